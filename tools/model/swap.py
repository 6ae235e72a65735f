#!/usr/bin/env python3
"""Swap the digits pipeline's model float32 -> int8 under live traffic, through hot reload.

1. Installs teacher_f32.tflite as .deps/model-flow/digits.tflite and serves
   tools/model/digits.toml (a copy with absolute paths and a free port) with bin/edgehost.
2. CLIENTS threads POST the test PNGs to /v1/pipelines/digits in a loop (keep-alive).
3. After SWAP_AFTER seconds it writes teacher_int8.tflite next to the served file and
   renames it over (atomic); /status is polled until edgehost reports the int8 file's hash.
4. Traffic goes on for as long again, then stops; edgehost is stopped with SIGTERM.

Each response is attributed to a version by its scores: the script runs both models on the
same pixels with ai-edge-litert first, and a response is "f32" or "int8" when its top-3
scores equal that model's (within 1e-4; int8 scores are multiples of 1/256, float32 ones
are not). It prints the number of failed requests (non-200, wrong JSON, unattributable or
a wrong top-1 for that version) and exits 1 unless it is 0 and both versions were seen.
"""
import argparse
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def expected_top3(model, pixels):
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=model, num_threads=1)
    it.allocate_tensors()
    di, do = it.get_input_details()[0], it.get_output_details()[0]
    out = []
    for p in pixels:
        if di["dtype"] == np.int8:
            a = (p.astype(np.int16) - 128).astype(np.int8)[None, ..., None]
        else:
            a = (p.astype(np.float32) / 255.0)[None, ..., None]
        it.set_tensor(di["index"], a)
        it.invoke()
        o = it.get_tensor(do["index"]).reshape(-1).astype(np.float64)
        s, zp = do["quantization"]
        if s:
            o = s * (o - zp)
        idx = sorted(range(10), key=lambda k: (-o[k], k))[:3]
        out.append([(k, o[k]) for k in idx])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=os.path.join(ROOT, ".deps", "model-flow"))
    ap.add_argument("--edgehost", default=os.path.join(ROOT, "bin", "edgehost"))
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--swap-after", type=float, default=3.0)
    args = ap.parse_args()
    d = args.dir
    f32, i8, served = (os.path.join(d, n) for n in ("teacher_f32.tflite", "teacher_int8.tflite", "digits.tflite"))
    pngs = sorted(f for f in os.listdir(os.path.join(d, "png")) if f.endswith(".png"))
    bodies = [open(os.path.join(d, "png", f), "rb").read() for f in pngs]
    pixels = np.load(os.path.join(d, "test.npz"))["pixels"][:len(pngs)]  # the PNGs hold these
    expect = {"f32": expected_top3(f32, pixels), "int8": expected_top3(i8, pixels)}

    tmp = served + ".tmp"
    shutil.copyfile(f32, tmp)
    os.replace(tmp, served)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    cfg_text = open(os.path.join(ROOT, "tools", "model", "digits.toml")).read()
    cfg_text = re.sub(r'address = "[^"]*"', f'address = "127.0.0.1:{port}"', cfg_text)
    cfg_text = cfg_text.replace('"../../', '"' + ROOT + '/')
    cfg = os.path.join(d, "digits-swap.toml")
    open(cfg, "w").write(cfg_text)
    log = open(os.path.join(d, "swap-edgehost.log"), "wb")
    proc = subprocess.Popen([args.edgehost, "--config", cfg, "serve"], stdout=log, stderr=log)

    def get(path):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()

    t0 = time.time()
    while True:
        try:
            if get("/v2/health/ready")[0] == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None or time.time() - t0 > 60:
            sys.exit("edgehost did not become ready; see " + log.name)
        time.sleep(0.2)

    stop = threading.Event()
    results = []  # (time, client, image, status, version or reason)
    lock = threading.Lock()

    def classify(i, body):
        try:
            top = json.loads(body)["top"]
        except ValueError:
            return "bad json"
        got = [(int(t["index"]), float(t["score"])) for t in top]
        for v, e in expect.items():
            if len(got) == 3 and all(g[0] == x[0] and abs(g[1] - x[1]) <= 1e-4 for g, x in zip(got, e[i])):
                return v
        return "unattributed " + json.dumps(top)

    def client(cid):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        k = cid
        while not stop.is_set():
            i = k % len(bodies)
            k += 1
            try:
                c.request("POST", "/v1/pipelines/digits", body=bodies[i], headers={"Content-Type": "image/png"})
                r = c.getresponse()
                b = r.read()
                v = classify(i, b) if r.status == 200 else f"HTTP {r.status} {b[:200]!r}"
                st = r.status
            except OSError as e:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                st, v = 0, f"connection error {e}"
            with lock:
                results.append((time.time(), cid, i, st, v))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(args.clients)]
    for t in threads:
        t.start()
    time.sleep(args.swap_after)
    want = sha(i8)
    t_swap = time.time()
    shutil.copyfile(i8, tmp)          # the new file next to the served one...
    os.replace(tmp, served)           # ...renamed over it: readers never see a partial file
    t_live = None
    while time.time() - t_swap < 30:
        st = json.loads(get("/status")[1])
        if want in json.dumps(st.get("models", st)):
            t_live = time.time()
            break
        time.sleep(0.05)
    time.sleep(args.swap_after)
    stop.set()
    for t in threads:
        t.join()
    proc.terminate()
    rc = proc.wait(timeout=30)

    ok = [r for r in results if r[3] == 200 and r[4] in ("f32", "int8")]
    failed = [r for r in results if r not in ok]
    before = [r for r in ok if r[0] < t_swap]
    after = [r for r in ok if t_live and r[0] > t_live]
    v_of = lambda rs, v: sum(1 for r in rs if r[4] == v)
    f32_last = max((r[0] for r in ok if r[4] == "f32"), default=None)
    i8_first = min((r[0] for r in ok if r[4] == "int8"), default=None)
    # Requests in flight at the swap may still finish on float32 after the first int8 one; once
    # /status shows the int8 hash, none may (checked below: "after" must be all int8).
    print(f"swap float32 -> int8 under {args.clients} concurrent clients (pipeline digits, {len(bodies)} PNGs)")
    print(f"requests: {len(results)}, failed: {len(failed)}, edgehost exit code after SIGTERM: {rc}")
    print(f"  before the rename : {len(before)} ok ({v_of(before, 'f32')} f32, {v_of(before, 'int8')} int8)")
    mid = [r for r in ok if r[0] >= t_swap and (t_live is None or r[0] <= t_live)]
    print(f"  rename -> int8 hash in /status ({(t_live - t_swap) if t_live else float('nan'):.2f} s):"
          f" {len(mid)} ok ({v_of(mid, 'f32')} f32, {v_of(mid, 'int8')} int8)")
    print(f"  after            : {len(after)} ok ({v_of(after, 'f32')} f32, {v_of(after, 'int8')} int8)")
    if f32_last and i8_first:
        print(f"  last f32 response {f32_last - t_swap:+.3f} s, first int8 response {i8_first - t_swap:+.3f} s"
              " from the rename")
    for r in failed[:10]:
        print("  FAILED:", r[1:])
    good = not failed and rc == 0 and v_of(before, "f32") > 0 and v_of(after, "int8") > 0 and v_of(after, "f32") == 0
    print("swap:", "OK" if good else "FAILED")
    sys.exit(0 if good else 1)


if __name__ == "__main__":
    main()

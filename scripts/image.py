#!/usr/bin/env python3
"""image.py VERSION DIST EMU: the multi-platform OCI image of edgehost (linux/amd64, linux/arm64),
built without a container daemon, as an OCI image layout: DIST/edgehost-VERSION-oci/ and the
same as one tar, DIST/edgehost-VERSION-oci.tar, with DIST/edgehost-VERSION-oci.files.txt listing
every file of every layer with its sha256 (`make release` calls it).

Each platform's image is two layers on nothing (scratch):
  1. glibc: Debian 12's libc6, libstdc++6 and libgcc-s1 of that architecture, as dpkg-deb -x
     unpacked them (EMU/sysroot-ARCH, scripts/deps-emu.sh; pinned by version and sha256)
  2. edgehost: that platform's release archive under /opt/edgehost, its config listening on
     0.0.0.0:8080 and compiling into /tmp; an empty /tmp (mode 1777)
User 65532:65532, entrypoint /opt/edgehost/bin/edgehost, command --config ... serve.
Reproducible: tar entries in name order, owner 0:0, mtimes and `created` from the last commit,
gzip without a name or time; the same inputs give the same digests.
"""
import gzip, hashlib, io, json, os, subprocess, sys, tarfile

VERSION, DIST, EMU = sys.argv[1], sys.argv[2], sys.argv[3]
EPOCH = int(subprocess.check_output(["git", "log", "-1", "--format=%ct"], text=True))
OUT = os.path.join(DIST, f"edgehost-{VERSION}-oci")
PLATFORMS = [("amd64", "amd64", None), ("arm64", "arm64", "v8")]
MT = {"index": "application/vnd.oci.image.index.v1+json", "manifest": "application/vnd.oci.image.manifest.v1+json",
      "config": "application/vnd.oci.image.config.v1+json", "layer": "application/vnd.oci.image.layer.v1.tar+gzip"}

def blob(data, media_type, **extra):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.join(OUT, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(OUT, "blobs", "sha256", d[7:]), "wb") as f:
        f.write(data)
    return dict(mediaType=media_type, digest=d, size=len(data), **extra)

def canon(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()

def entry(name, mode, kind=tarfile.REGTYPE, size=0, link=""):
    ti = tarfile.TarInfo(name)
    ti.mode, ti.type, ti.size, ti.linkname = mode, kind, size, link
    ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = EPOCH, 0, 0, "", ""
    return ti

def layer(files):
    """files: {path in the image: (mode, bytes) | (mode, None) for a directory | ('link', target)}"""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            v = files[name]
            if v[0] == "link":
                tar.addfile(entry(name, 0o777, tarfile.SYMTYPE, link=v[1]))
            elif v[1] is None:
                tar.addfile(entry(name, v[0], tarfile.DIRTYPE))
            else:
                tar.addfile(entry(name, v[0], size=len(v[1])), io.BytesIO(v[1]))
    plain = raw.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=gz, compresslevel=9, mtime=0) as g:
        g.write(plain)
    return gz.getvalue(), "sha256:" + hashlib.sha256(plain).hexdigest()

def tree(root, prefix):
    """A directory as layer files under prefix (modes kept, owners dropped)."""
    files = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        base = prefix if rel == "." else os.path.join(prefix, rel)
        if base:
            files[base] = (os.stat(dirpath).st_mode & 0o7777, None)
        for n in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
            p = os.path.join(dirpath, n)
            name = os.path.join(base, n) if base else n
            if os.path.islink(p):
                files[name] = ("link", os.readlink(p))
            else:
                with open(p, "rb") as f:
                    files[name] = (os.stat(p).st_mode & 0o7777, f.read())
    return files

import shutil
shutil.rmtree(OUT, ignore_errors=True)
manifests = []
listing = [f"Files of the OCI image edgehost:{VERSION}, per platform and layer, with sha256 (symlinks: ->).",
           "Layer 1 is Debian 12's libc6 2.36-9+deb12u14, libstdc++6 12.2.0-14+deb12u1 and libgcc-s1",
           "12.2.0-14+deb12u1 of the architecture (scripts/deps-emu.sh pins each .deb by sha256; their",
           "copyright files are in usr/share/doc); layer 2 is the release archive (its THIRD_PARTY.txt).", ""]
def note(arch, n, files):
    for name in sorted(files):
        v = files[name]
        if v[0] == "link":
            listing.append(f"{arch} layer{n} {name} -> {v[1]}")
        elif v[1] is not None:
            listing.append(f"{arch} layer{n} {hashlib.sha256(v[1]).hexdigest()} {name}")
for arch, goarch, variant in PLATFORMS:
    sysroot = os.path.join(EMU, f"sysroot-{arch}")
    gfiles = tree(sysroot, "")
    note(arch, 1, gfiles)
    glibc, glibc_id = layer(gfiles)
    archive = os.path.join(DIST, f"edgehost-{VERSION}-linux-{arch}.tar.gz")
    app = {"opt": (0o755, None), "opt/edgehost": (0o755, None), "tmp": (0o1777, None)}
    top = f"edgehost-{VERSION}-linux-{arch}/"
    with tarfile.open(archive) as t:
        for m in t.getmembers():
            name = "opt/edgehost/" + m.name[len(top):] if m.name.startswith(top) else None
            if not name or name == "opt/edgehost/":
                continue
            name = name.rstrip("/")
            if m.isdir():
                app[name] = (m.mode, None)
            else:
                data = t.extractfile(m).read()
                if name == "opt/edgehost/config.toml":
                    data = data.decode().replace('address = "127.0.0.1:8080"', 'address = "0.0.0.0:8080"', 1) \
                        .replace('cache_dir = ".cache/wazero"', 'cache_dir = "/tmp/edgehost-cache"', 1).encode()
                app[name] = (m.mode, data)
    note(arch, 2, app)
    appl, app_id = layer(app)
    layers = [blob(glibc, MT["layer"]), blob(appl, MT["layer"])]
    created = __import__("datetime").datetime.fromtimestamp(EPOCH, __import__("datetime").timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    cfg = {"created": created, "architecture": goarch, "os": "linux",
           "config": {"User": "65532:65532", "Entrypoint": ["/opt/edgehost/bin/edgehost"],
                      "Cmd": ["--config", "/opt/edgehost/config.toml", "serve"],
                      "Env": ["MALLOC_ARENA_MAX=2"], "ExposedPorts": {"8080/tcp": {}}, "WorkingDir": "/opt/edgehost",
                      "Labels": {"org.opencontainers.image.version": VERSION, "org.opencontainers.image.title": "edgehost"}},
           "rootfs": {"type": "layers", "diff_ids": [glibc_id, app_id]},
           "history": [{"created": created, "created_by": "Debian 12 libc6 libstdc++6 libgcc-s1 (scripts/deps-emu.sh)"},
                       {"created": created, "created_by": f"edgehost-{VERSION}-linux-{arch}.tar.gz under /opt/edgehost"}]}
    if variant:
        cfg["variant"] = variant
    man = {"schemaVersion": 2, "mediaType": MT["manifest"], "config": blob(canon(cfg), MT["config"]), "layers": layers}
    plat = {"architecture": goarch, "os": "linux"}
    if variant:
        plat["variant"] = variant
    manifests.append(blob(canon(man), MT["manifest"], platform=plat))
index = blob(canon({"schemaVersion": 2, "mediaType": MT["index"], "manifests": manifests}), MT["index"],
             annotations={"org.opencontainers.image.ref.name": VERSION})
with open(os.path.join(OUT, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
with open(os.path.join(OUT, "index.json"), "wb") as f:
    f.write(canon({"schemaVersion": 2, "mediaType": MT["index"], "manifests": [index]}))
# The layout as one tar (what `crane push`, `skopeo copy oci-archive:` or `podman load` take).
with tarfile.open(OUT + ".tar.tmp", "w", format=tarfile.PAX_FORMAT) as tar:
    for name, v in sorted(tree(OUT, "").items()):
        if v[1] is None:
            tar.addfile(entry(name, 0o755, tarfile.DIRTYPE))
        else:
            tar.addfile(entry(name, 0o644, size=len(v[1])), io.BytesIO(v[1]))
os.replace(OUT + ".tar.tmp", OUT + ".tar")
with open(OUT + ".files.txt", "w") as f:
    f.write("\n".join(listing) + "\n")
print(f"image: {OUT}.tar: index {index['digest']}", file=sys.stderr)
for m in manifests:
    print(f"image:   linux/{m['platform']['architecture']}: manifest {m['digest']}", file=sys.stderr)

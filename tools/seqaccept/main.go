// Command seqaccept is the acceptance run of sequences (issue 26; `make seq-accept`): it
// serves the wakeword pipeline with bin/edgehost (a child process, gRPC on loopback) and
// drives it over gRPC ModelStreamInfer:
//
//  1. one stream alone: the reference outputs of the clip (report = "all": every chunk's
//     features, model output, probability, detection);
//  2. -streams sequences at once, each its own stream fed at real time (a 10 ms chunk every
//     10 ms, not waiting for answers) for -duration: every answer must equal the stream's
//     alone, 0 errors; it reports how far answers lag the audio and edgehost's RSS over time;
//  3. -starts sequence starts that never end: accepted up to sequences.max, the rest refused
//     (RESOURCE_EXHAUSTED), RSS bounded;
//  4. -swap-streams sequences at real time while the post plugin's file is replaced by a new
//     version (hot reload): 0 failed chunks, no sequence sees two versions, sequences
//     started after the swap run the new one.
//
// It exits non-zero when a check fails. Run from the repository root after make build plugins.
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	pb "github.com/edgehost/edgehost/host/grpcserver/inference"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

var (
	streams     = flag.Int("streams", 200, "concurrent sequences in phase 2")
	duration    = flag.Duration("duration", 60*time.Second, "audio per stream in phase 2")
	starts      = flag.Int("starts", 10000, "sequence starts without ends in phase 3")
	maxSeq      = flag.Int("max", 512, "sequences.max of the served pipeline")
	swapStreams = flag.Int("swap-streams", 50, "sequences streaming through the hot swap in phase 4")
	clipPath    = flag.String("clip", ".deps/wakeword-ref/nabu-en-us-120.wav", "16 kHz mono WAV (looped to the duration); quiet noise when missing")
	keep        = flag.Bool("keep", false, "keep the temporary directory")
)

const chunkBytes = 320

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "seqaccept: FAIL:", err)
		os.Exit(1)
	}
	fmt.Println("seqaccept: PASS")
}

func fail(format string, a ...any) error { return fmt.Errorf(format, a...) }

func run() error {
	root, _ := os.Getwd()
	dir, err := os.MkdirTemp("", "seqaccept")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	pcm := loadClip(*clipPath)
	// The post plugin the server watches: a copy, so that phase 4 can replace it.
	post := filepath.Join(dir, "wakeword-c.wasm")
	if err := copyFile(filepath.Join(root, "plugins/examples/wakeword-c/wakeword-c.wasm"), post); err != nil {
		return err
	}
	v2 := filepath.Join(dir, "wakeword-c-v2.wasm")
	if err := buildV2(root, v2); err != nil {
		return fmt.Errorf("building version 2 of wakeword-c: %w", err)
	}
	httpAddr, grpcAddr := freeAddr(), freeAddr()
	cfg := fmt.Sprintf(`[server]
address = %q
grpc_address = %q
request_timeout = "30s"
[log]
level = "warn"
[runtime]
cache_dir = ""
watch = true
[models.okay_nabu]
path = %q
threads = 1
xnnpack = false
[pipelines.wakeword]
model = "okay_nabu"
workers = 1
rollback_window = 0
[pipelines.wakeword.sequences]
max = %d
idle_timeout = "20s"
[pipelines.wakeword.pre]
path = %q
memory_limit_mb = 4
budget_clock = "cpu"
[pipelines.wakeword.post]
path = %q
memory_limit_mb = 4
budget_clock = "cpu"
params = { wake_word = "Okay Nabu", probability_cutoff = 0.85, sliding_window_size = 5, report = "all" }
`, httpAddr, grpcAddr, filepath.Join(root, ".deps/models/okay_nabu.tflite"), *maxSeq,
		filepath.Join(root, "plugins/examples/microfeatures-c/microfeatures-c.wasm"), post)
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(root, "bin/edgehost"), "--config", cfgPath, "serve")
	cmd.Env = append(os.Environ(), "MALLOC_ARENA_MAX=2")
	logf, _ := os.Create(filepath.Join(dir, "edgehost.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	// Clients as devices are: a connection each for up to 32 streams (edgehost serves at most
	// 64 calls at once per connection; more streams on one connection wait for a slot).
	var clients []pb.GRPCInferenceServiceClient
	for range max(*streams, *swapStreams)/32 + 1 {
		conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		clients = append(clients, pb.NewGRPCInferenceServiceClient(conn))
	}
	c := clients[0]
	if err := waitReady(c); err != nil {
		return fmt.Errorf("edgehost did not start (%s): %w", filepath.Join(dir, "edgehost.log"), err)
	}
	pid := cmd.Process.Pid
	fmt.Printf("edgehost pid %d ready, RSS %.1f MiB; clip %s looped to %v (%d chunks)\n", pid, rss(pid), *clipPath, *duration, len(pcm)/chunkBytes)

	// 1. Alone.
	t0 := time.Now()
	alone, err := stream(c, "alone", pcm, 0, nil)
	if err != nil {
		return fmt.Errorf("stream alone: %w", err)
	}
	dets := 0
	for _, a := range alone.out {
		if strings.Contains(a, `"detected":true`) {
			dets++
		}
	}
	fmt.Printf("1. alone: %d chunks in %v (%.0f chunks/s unpaced, one stream), %d chunks detected\n", len(alone.out), time.Since(t0).Round(time.Millisecond), float64(len(alone.out))/time.Since(t0).Seconds(), dets)

	// 2. Many at real time.
	if err := many(clients, pid, pcm, alone.out); err != nil {
		return err
	}
	// 3. Starts without ends.
	if err := startsBounded(c, pid); err != nil {
		return err
	}
	// 4. Hot swap of the post plugin.
	return hotSwap(clients, pcm, post, v2)
}

type result struct {
	out  []string        // each chunk's answer (the result bytes)
	lag  []time.Duration // answer time minus the end of the chunk's 10 ms in real time (paced streams; negative: answered before the audio it covers would have ended on a live microphone)
	errs int
}

// stream sends pcm as one sequence on its own ModelStreamInfer stream, paced at real time
// when pace > 0 (a chunk every pace, not waiting for answers), and collects the answers.
// onChunk, if set, is called after each answer with its index.
func stream(c pb.GRPCInferenceServiceClient, id string, pcm []byte, pace time.Duration, onChunk func(int)) (*result, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := c.ModelStreamInfer(ctx)
	if err != nil {
		return nil, err
	}
	n := len(pcm) / chunkBytes
	start := time.Now()
	sendErr := make(chan error, 1)
	go func() {
		for i := range n {
			if pace > 0 {
				if d := time.Until(start.Add(time.Duration(i) * pace)); d > 0 {
					time.Sleep(d)
				}
			}
			elem := binary.LittleEndian.AppendUint32(nil, chunkBytes)
			elem = append(elem, pcm[i*chunkBytes:(i+1)*chunkBytes]...)
			req := &pb.ModelInferRequest{ModelName: "wakeword", Id: strconv.Itoa(i),
				Parameters: map[string]*pb.InferParameter{
					"sequence_id":    {ParameterChoice: &pb.InferParameter_StringParam{StringParam: id}},
					"sequence_start": {ParameterChoice: &pb.InferParameter_BoolParam{BoolParam: i == 0}},
					"sequence_end":   {ParameterChoice: &pb.InferParameter_BoolParam{BoolParam: i == n-1}},
				},
				Inputs:           []*pb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "BYTES", Shape: []int64{1}}},
				RawInputContents: [][]byte{elem}}
			if err := st.Send(req); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- st.CloseSend()
	}()
	r := &result{}
	for i := 0; ; i++ {
		resp, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return r, err
		}
		if pace > 0 {
			r.lag = append(r.lag, time.Since(start.Add(time.Duration(i+1)*pace)))
		}
		if m := resp.GetErrorMessage(); m != "" {
			r.errs++
			r.out = append(r.out, "error: "+m)
		} else if id := resp.GetInferResponse().GetId(); id != strconv.Itoa(i) {
			return r, fail("answer %d has id %s: out of order", i, id)
		} else {
			raw := resp.GetInferResponse().GetRawOutputContents()
			if len(raw) != 1 || len(raw[0]) < 4 {
				return r, fail("answer %d: no result", i)
			}
			r.out = append(r.out, string(raw[0][4:]))
		}
		if onChunk != nil {
			onChunk(i)
		}
	}
	if err := <-sendErr; err != nil {
		return r, err
	}
	if len(r.out) != n {
		return r, fail("%d answers for %d chunks", len(r.out), n)
	}
	return r, nil
}

func many(cs []pb.GRPCInferenceServiceClient, pid int, pcm []byte, alone []string) error {
	var wg sync.WaitGroup
	results := make([]*result, *streams)
	errs := make([]error, *streams)
	var rssLog []float64
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Second):
				rssLog = append(rssLog, rss(pid))
			}
		}
	}()
	t0 := time.Now()
	for k := range *streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(k) * 10 * time.Millisecond / time.Duration(*streams)) // spread the starts over one chunk
			results[k], errs[k] = stream(cs[k%len(cs)], fmt.Sprintf("rt-%d", k), pcm, 10*time.Millisecond, nil)
		}()
	}
	wg.Wait()
	close(done)
	wall := time.Since(t0)
	var lags []time.Duration
	mismatched, failed, errors := 0, 0, 0
	for k, r := range results {
		if errs[k] != nil {
			failed++
			fmt.Printf("   stream %d: %v\n", k, errs[k])
			continue
		}
		errors += r.errs
		if !slices.Equal(r.out, alone) {
			mismatched++
			for i, o := range r.out {
				if o != alone[i] && mismatched <= 3 {
					fmt.Printf("   stream %d chunk %d: %.200s\n", k, i, o)
					break
				}
			}
		}
		lags = append(lags, r.lag...)
	}
	slices.Sort(lags)
	q := func(p float64) time.Duration {
		if len(lags) == 0 {
			return 0
		}
		return lags[min(len(lags)-1, int(p*float64(len(lags))))].Round(time.Millisecond)
	}
	fmt.Printf("2. %d streams at real time, %v of audio each, wall %v: %d failed streams, %d error answers, %d streams differing from alone\n",
		*streams, *duration, wall.Round(time.Millisecond), failed, errors, mismatched)
	fmt.Printf("   answer lag behind the audio: p50 %v p99 %v max %v (%d answers)\n", q(0.5), q(0.99), q(1), len(lags))
	if len(rssLog) > 4 {
		n := len(rssLog)
		fmt.Printf("   edgehost RSS: %.1f MiB after 2 s, %.1f MiB at half, %.1f MiB at the end, max %.1f MiB\n", rssLog[1], rssLog[n/2], rssLog[n-1], slices.Max(rssLog))
		if rssLog[n-1] > 1.25*rssLog[n/2]+8 {
			return fail("RSS grew from %.1f to %.1f MiB in the second half", rssLog[n/2], rssLog[n-1])
		}
	}
	if failed+errors+mismatched > 0 {
		return fail("phase 2: %d failed streams, %d errors, %d streams differ from alone", failed, errors, mismatched)
	}
	return nil
}

func startsBounded(c pb.GRPCInferenceServiceClient, pid int) error {
	if *starts == 0 {
		return nil
	}
	before := rss(pid)
	accepted, refused := 0, 0
	chunk := make([]byte, 4+chunkBytes)
	binary.LittleEndian.PutUint32(chunk, chunkBytes)
	t0 := time.Now()
	for i := range *starts {
		req := &pb.ModelInferRequest{ModelName: "wakeword",
			Parameters: map[string]*pb.InferParameter{
				"sequence_id":    {ParameterChoice: &pb.InferParameter_Int64Param{Int64Param: int64(1_000_000 + i)}},
				"sequence_start": {ParameterChoice: &pb.InferParameter_BoolParam{BoolParam: true}},
			},
			Inputs:           []*pb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "BYTES", Shape: []int64{1}}},
			RawInputContents: [][]byte{chunk}}
		_, err := c.ModelInfer(context.Background(), req)
		switch status.Code(err) {
		case codes.OK:
			accepted++
		case codes.ResourceExhausted:
			refused++
		default:
			return fail("start %d: %v", i, err)
		}
	}
	after := rss(pid)
	fmt.Printf("3. %d starts without ends in %v: %d accepted (sequences.max %d), %d refused RESOURCE_EXHAUSTED; RSS %.1f -> %.1f MiB\n",
		*starts, time.Since(t0).Round(time.Millisecond), accepted, *maxSeq, refused, before, after)
	if accepted > *maxSeq || refused != *starts-accepted {
		return fail("phase 3: %d accepted with max %d", accepted, *maxSeq)
	}
	// Let them expire (idle_timeout 20s) so phase 4 has room.
	fmt.Printf("   waiting for them to expire (idle_timeout 20s)\n")
	time.Sleep(25 * time.Second)
	fmt.Printf("   RSS after expiry: %.1f MiB\n", rss(pid))
	return nil
}

func hotSwap(cs []pb.GRPCInferenceServiceClient, pcm []byte, post, v2 string) error {
	n := min(len(pcm)/chunkBytes, 1000) // 10 s each
	pcm = pcm[:n*chunkBytes]
	var wg sync.WaitGroup
	var swapped atomic.Bool
	results := make([]*result, *swapStreams)
	errs := make([]error, *swapStreams)
	for k := range *swapStreams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[k], errs[k] = stream(cs[k%len(cs)], fmt.Sprintf("swap-%d", k), pcm, 10*time.Millisecond, func(i int) {
				if k == 0 && i == n/3 && !swapped.Swap(true) {
					go func() {
						// A new version of the post plugin, written beside and renamed over.
						tmp := post + ".tmp"
						if err := copyFile(v2, tmp); err == nil {
							os.Rename(tmp, post)
						}
					}()
				}
			})
		}()
	}
	wg.Wait()
	var later *result
	var laterErr error
	// Sequences that start after the swap run the new version (wait for the reload).
	for range 50 {
		later, laterErr = stream(cs[0], "after-swap", pcm[:30*chunkBytes], 0, nil)
		if laterErr == nil && version(later.out[len(later.out)-1]) == 2 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	failed, errors, mixed, onOld := 0, 0, 0, 0
	for k, r := range results {
		if errs[k] != nil {
			failed++
			fmt.Printf("   stream %d: %v\n", k, errs[k])
			continue
		}
		errors += r.errs
		vs := map[int]bool{}
		for _, o := range r.out {
			vs[version(o)] = true
		}
		if len(vs) != 1 {
			mixed++
		}
		if vs[1] {
			onOld++
		}
	}
	newV := 0
	if laterErr == nil {
		newV = version(later.out[len(later.out)-1])
	}
	fmt.Printf("4. hot swap of the post plugin during %d streams: %d failed streams, %d failed chunks, %d sequences saw two versions; %d finished on version 1; a sequence started after the swap ran version %d\n",
		*swapStreams, failed, errors, mixed, onOld, newV)
	if failed+errors+mixed > 0 || newV != 2 {
		return fail("phase 4: %d failed, %d errors, %d mixed, new sequences on version %d", failed, errors, mixed, newV)
	}
	return nil
}

// version reads the "v" wakeword-c adds to its report = "all" answers.
func version(answer string) int {
	var v struct{ V int }
	if json.Unmarshal([]byte(answer), &v) != nil {
		return -1
	}
	return v.V
}

// buildV2 compiles wakeword-c with WAKEWORD_VERSION 2 and version 1.0.1 in its manifest.
func buildV2(root, out string) error {
	sdk := filepath.Join(root, "sdk/c")
	cc := exec.Command(filepath.Join(root, ".deps/bin/wasi-cc"), "-O2", "-mexec-model=reactor", "-I"+sdk,
		"-Wl,--strip-debug", "-Wl,-z,stack-size=65536", "-Wl,--initial-memory=262144", "-DWAKEWORD_VERSION=2", "-o", out,
		filepath.Join(root, "plugins/examples/wakeword-c/wakeword.c"), filepath.Join(sdk, "edgehost.c"), filepath.Join(sdk, "heap.c"))
	if b, err := cc.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, b)
	}
	man, err := os.ReadFile(filepath.Join(root, "plugins/examples/wakeword-c/manifest.json"))
	if err != nil {
		return err
	}
	m := filepath.Join(filepath.Dir(out), "manifest-v2.json")
	if err := os.WriteFile(m, bytes.Replace(man, []byte(`"1.0.0"`), []byte(`"1.0.1"`), 1), 0o644); err != nil {
		return err
	}
	if b, err := exec.Command(filepath.Join(root, "bin/edgehost"), "plugin", "manifest", "--set", m, out).CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, b)
	}
	return nil
}

func loadClip(path string) []byte {
	var pcm []byte
	if b, err := os.ReadFile(path); err == nil {
		for pos := 12; pos+8 <= len(b); {
			n := int(binary.LittleEndian.Uint32(b[pos+4:]))
			if string(b[pos:pos+4]) == "data" {
				pcm = b[pos+8 : min(len(b), pos+8+n)]
				break
			}
			pos += 8 + n + n&1
		}
	}
	if len(pcm) < chunkBytes {
		fmt.Printf("no clip at %s (make wakeword-ref): quiet noise instead\n", path)
		pcm = make([]byte, 32000)
		r := uint32(1)
		for i := 0; i < len(pcm); i += 2 {
			r ^= r << 13
			r ^= r >> 17
			r ^= r << 5
			binary.LittleEndian.PutUint16(pcm[i:], uint16(int16(r%401)-200))
		}
	}
	want := int(duration.Seconds()*100) * chunkBytes
	out := make([]byte, 0, want)
	for len(out) < want {
		out = append(out, pcm[:len(pcm)/chunkBytes*chunkBytes]...)
	}
	return out[:want]
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitReady(c pb.GRPCInferenceServiceClient) error {
	var err error
	for range 240 {
		var r *pb.ServerReadyResponse
		if r, err = c.ServerReady(context.Background(), &pb.ServerReadyRequest{}); err == nil && r.GetReady() {
			return nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err == nil {
		err = errors.New("not ready")
	}
	return err
}

// rss is the resident set size of process pid in MiB.
func rss(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// Command wakewordbench compares edgehost's wakeword pipeline with pymicro-wakeword on the
// same clip, interleaved (`make bench-wakeword`): the real-time factor (processing time /
// audio time) of one stream on one core, the latency of one 10 ms chunk through the whole
// pipeline, and the streams one core sustains in real time (chunks per second of one core /
// 100). edgehost runs in process (engine + pipeline, as `edgehost run` does: the cost of the
// pipeline without a network front end; tools/seqaccept measures gRPC streams); Python
// runs tools/wakeword/bench.py in .deps/wakeword-venv. Both with GOMAXPROCS / threads = 1.
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/engine"
	"github.com/edgehost/edgehost/host/pipeline"
	"github.com/hashicorp/go-hclog"
)

var (
	clip   = flag.String("clip", "", "16 kHz mono WAV (default: nabu-en-us-120 of make wakeword-ref looped to 60 s)")
	rounds = flag.Int("rounds", 3, "interleaved rounds")
	out    = flag.String("out", "", "also write the markdown table here")
)

type run struct {
	chunks         int
	seconds        float64
	p50, p99       float64
	detections     int
	who            string
	audioSeconds   float64
	chunksPerSec   float64
	rtf            float64
	streamsPerCore float64
}

func main() {
	flag.Parse()
	runtime.GOMAXPROCS(1)
	path := *clip
	if path == "" {
		path = loop(".deps/wakeword-ref/nabu-en-us-120.wav", 60)
	}
	pcm := wavData(path)
	cfg, err := config.Load("config.toml")
	must(err)
	for n := range cfg.Pipelines {
		if n != "wakeword" {
			delete(cfg.Pipelines, n)
		}
	}
	for n := range cfg.Models {
		if n != "okay_nabu" {
			delete(cfg.Models, n)
		}
	}
	cfg.Runtime.Watch = new(bool)
	e, err := engine.New(context.Background(), cfg, hclog.NewNullLogger())
	must(err)
	defer e.Close(context.Background())
	p, _ := e.Pipeline("wakeword")
	var eh, py []run
	for r := range *rounds {
		eh = append(eh, edgehost(p.Pipeline, pcm, fmt.Sprintf("bench-%d", r)))
		py = append(py, python(path))
	}
	best := func(rs []run) run {
		return slices.MinFunc(rs, func(a, b run) int { return int((a.seconds - b.seconds) * 1e9) })
	}
	a, b := best(eh), best(py)
	var t strings.Builder
	fmt.Fprintf(&t, "Wake word (okay_nabu), %d chunks of 10 ms (%.0f s of audio), one stream, one core, best of %d interleaved rounds:\n\n", a.chunks, a.audioSeconds, *rounds)
	fmt.Fprintf(&t, "| | chunks/s | real-time factor | chunk p50 | chunk p99 | streams per core (real time) | detections |\n|---|---|---|---|---|---|---|\n")
	for _, x := range []run{a, b} {
		fmt.Fprintf(&t, "| %s | %.0f | %.4f | %.1f µs | %.1f µs | %.0f | %d |\n", x.who, x.chunksPerSec, x.rtf, x.p50*1e6, x.p99*1e6, x.streamsPerCore, x.detections)
	}
	fmt.Fprintf(&t, "\nedgehost / pymicro-wakeword: %.2f× the chunks per second; all rounds: edgehost %v s, pymicro-wakeword %v s\n",
		a.chunksPerSec/b.chunksPerSec, secs(eh), secs(py))
	fmt.Print(t.String())
	if *out != "" {
		must(os.WriteFile(*out, []byte(t.String()), 0o644))
	}
}

func secs(rs []run) []string {
	var s []string
	for _, r := range rs {
		s = append(s, fmt.Sprintf("%.3f", r.seconds))
	}
	return s
}

func finish(r run) run {
	r.audioSeconds = float64(r.chunks) * 0.01
	r.chunksPerSec = float64(r.chunks) / r.seconds
	r.rtf = r.seconds / r.audioSeconds
	r.streamsPerCore = r.chunksPerSec / 100
	return r
}

func edgehost(p *pipeline.Pipeline, pcm []byte, id string) run {
	n := len(pcm) / 320
	lat := make([]float64, 0, n)
	dets := 0
	t0 := time.Now()
	for i := range n {
		c0 := time.Now()
		_, err := p.Do(context.Background(), pipeline.Request{Body: bytes.NewReader(pcm[i*320 : (i+1)*320]), Size: 320,
			Sequence: pipeline.Sequence{ID: id, Start: i == 0, End: i == n-1}}, func(b []byte, _ string) error {
			if len(b) > 0 {
				dets++
			}
			return nil
		})
		must(err)
		lat = append(lat, time.Since(c0).Seconds())
	}
	total := time.Since(t0).Seconds()
	slices.Sort(lat)
	return finish(run{who: "edgehost (in process)", chunks: n, seconds: total, p50: lat[n/2], p99: lat[n*99/100], detections: dets})
}

func python(path string) run {
	cmd := exec.Command(".deps/wakeword-venv/bin/python", "tools/wakeword/bench.py", path)
	cmd.Env = append(os.Environ(), "OMP_NUM_THREADS=1")
	b, err := cmd.Output()
	must(err)
	var r struct {
		Chunks     int
		Seconds    float64
		P50, P99   float64
		Detections int
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	must(json.Unmarshal([]byte(lines[len(lines)-1]), &r))
	return finish(run{who: "pymicro-wakeword 2.5.0", chunks: r.Chunks, seconds: r.Seconds, p50: r.P50, p99: r.P99, detections: r.Detections})
}

func wavData(path string) []byte {
	b, err := os.ReadFile(path)
	must(err)
	for pos := 12; pos+8 <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[pos+4:]))
		if string(b[pos:pos+4]) == "data" {
			return b[pos+8 : min(len(b), pos+8+n)]
		}
		pos += 8 + n + n&1
	}
	panic(path + ": no data chunk")
}

// loop writes the clip repeated to at least secs seconds as a WAV in a temporary file.
func loop(path string, secs int) string {
	pcm := wavData(path)
	var all []byte
	for len(all) < secs*32000 {
		all = append(all, pcm...)
	}
	le := binary.LittleEndian
	h := []byte("RIFF\x00\x00\x00\x00WAVEfmt ")
	h = le.AppendUint32(h, 16)
	h = le.AppendUint16(h, 1)
	h = le.AppendUint16(h, 1)
	h = le.AppendUint32(h, 16000)
	h = le.AppendUint32(h, 32000)
	h = le.AppendUint16(h, 2)
	h = le.AppendUint16(h, 16)
	h = append(h, "data"...)
	h = le.AppendUint32(h, uint32(len(all)))
	h = append(h, all...)
	le.PutUint32(h[4:], uint32(len(h)-8))
	f, err := os.CreateTemp("", "wakeword-*.wav")
	must(err)
	_, err = f.Write(h)
	must(err)
	f.Close()
	return f.Name()
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "wakewordbench:", err)
		os.Exit(1)
	}
}

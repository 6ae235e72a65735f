// Command bench measures the p50 invoke latency of .tflite models through edgehost's own
// inference path (host/tflite: go-tflite over the TFLite C library, XNNPACK applied the way
// edgehost applies it). It times Invoke only: no HTTP, no plugins, no copies.
//
//	go run ./tools/model/bench -threads 1 -n 2000 a.tflite b.tflite
//
// prints one JSON object per model: {"path":…, "p50_us":…, "p90_us":…, "n":…, "delegates":[…]}.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/edgehost/edgehost/host/tflite"
)

func main() {
	threads := flag.Int("threads", 1, "interpreter and XNNPACK threads")
	xnn := flag.Bool("xnnpack", true, "apply the XNNPACK delegate")
	n := flag.Int("n", 2000, "timed invokes per model")
	warm := flag.Int("warmup", 100, "untimed invokes first")
	flag.Parse()
	enc := json.NewEncoder(os.Stdout)
	for _, path := range flag.Args() {
		if err := bench(enc, path, *threads, *xnn, *n, *warm); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", path, err)
			os.Exit(1)
		}
	}
}

func bench(enc *json.Encoder, path string, threads int, xnn bool, n, warm int) error {
	m, err := tflite.LoadModel(path, tflite.Options{Threads: threads, XNNPACK: xnn})
	if err != nil {
		return err
	}
	defer m.Close()
	it, err := m.NewInterpreter()
	if err != nil {
		return err
	}
	defer it.Close()
	for i := 0; i < it.InputCount(); i++ {
		in := it.Input(i)
		for k := range in {
			in[k] = byte(k * 7) // arbitrary, fixed data: latency does not depend on it here
		}
	}
	for i := 0; i < warm; i++ {
		if err := it.Invoke(); err != nil {
			return err
		}
	}
	d := make([]time.Duration, n)
	for i := range d {
		t := time.Now()
		if err := it.Invoke(); err != nil {
			return err
		}
		d[i] = time.Since(t)
	}
	sort.Slice(d, func(a, b int) bool { return d[a] < d[b] })
	us := func(q float64) float64 { return float64(d[int(q*float64(n-1))].Nanoseconds()) / 1e3 }
	return enc.Encode(map[string]any{"path": path, "n": n, "threads": threads, "xnnpack": xnn,
		"p50_us": us(0.5), "p90_us": us(0.9), "delegates": it.Delegates()})
}

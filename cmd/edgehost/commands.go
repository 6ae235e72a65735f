package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/engine"
	"github.com/edgehost/edgehost/host/grpcserver"
	"github.com/edgehost/edgehost/host/mqtt"
	"github.com/edgehost/edgehost/host/server"
	"github.com/edgehost/edgehost/host/stream"
	"github.com/edgehost/edgehost/host/tflite"
	"github.com/edgehost/edgehost/internal/safefile"
	"github.com/hashicorp/go-hclog"
)

func (g *globals) loadConfig() (*config.Config, error) {
	c, err := config.Load(g.config)
	if err == nil {
		setProbeCache(c.Runtime.CacheDir)
	}
	return c, err
}

func newLogger(c config.Log, w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "edgehost", Level: hclog.LevelFromString(c.Level),
		JSONFormat: c.Format == "json", Output: w})
}

func cmdServe(g *globals, args []string) error {
	fs := g.flags("serve")
	addr := fs.String("addr", "", "listen address, overriding [server] address")
	grpcAddr := fs.String("grpc-addr", "", `KServe v2 gRPC listen address, overriding [server] grpc_address ("off": none)`)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return &usageError{msg: fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	if *addr != "" {
		cfg.Server.Address = *addr
	}
	switch *grpcAddr {
	case "":
	case "off":
		cfg.Server.GRPCAddress = ""
	default:
		cfg.Server.GRPCAddress = *grpcAddr
	}
	log := newLogger(cfg.Log, g.stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Plugins not in the compilation cache start on wazero's interpreter and are compiled
	// in the background (wasm_engine = "auto"; RATIONALE.md, "Cold start: interpreter first").
	// The listeners open at once and each pipeline is served as soon as it is built; until
	// then a request to it is answered 503 (class "starting") and /v2/health/ready says
	// not ready. A pipeline that fails to build stops serve with its error, as before.
	e, err := engine.Start(ctx, cfg, log, engine.Options{InterpreterFirst: true})
	if err != nil {
		return err
	}
	defer func() {
		stop()                        // ends a start still building (serve failed early)
		e.Close(context.Background()) // waits for the start to end first
	}()
	var started atomic.Bool
	srv := server.New(e, cfg.Server, log)
	srv.SetReady(started.Load)
	l, err := net.Listen("tcp", cfg.Server.Address)
	if err != nil {
		return err
	}
	grpcDone := make(chan error, 1)
	if cfg.Server.GRPCAddress != "" {
		gl, err := net.Listen("tcp", cfg.Server.GRPCAddress)
		if err != nil {
			l.Close()
			return fmt.Errorf("server.grpc_address: %w", err)
		}
		log.Info("serving KServe v2 gRPC", "address", gl.Addr().String())
		go func() {
			err := grpcserver.New(srv, cfg.Server, log).Serve(ctx, gl)
			stop() // one front end failing stops the other
			grpcDone <- err
		}()
	} else {
		grpcDone <- nil
	}
	httpDone := make(chan error, 1)
	go func() {
		err := srv.Serve(ctx, l)
		stop() // one front end failing stops the other
		httpDone <- err
	}()
	// stopServing stops both front ends and returns the first error of err and theirs; a
	// front end's own error wins over a start cancelled because that front end stopped.
	stopServing := func(err error) error {
		stop()
		herr, gerr := <-httpDone, <-grpcDone
		if errors.Is(err, context.Canceled) && (herr != nil || gerr != nil) {
			err = nil
		}
		for _, fe := range []error{herr, gerr} {
			if err == nil {
				err = fe
			}
		}
		return err
	}
	log.Info("listening while the pipelines load", "address", l.Addr().String(), "pipelines", strings.Join(cfg.PipelineNames(), ","))
	if err := e.WaitStarted(); err != nil {
		return stopServing(err)
	}
	// Compiling the plugins leaves the heap at its peak (~100 MiB of garbage for the shipped
	// config) while little of it stays live: hand it back before serving (RATIONALE.md, RSS).
	debug.FreeOSMemory()
	tflite.TrimCHeap() // the same for glibc's arenas (interpreters built and freed)
	go func() {
		// The same once the plugins that started on the interpreter are compiled and swapped
		// in: the compiles and the interpreter versions leave as much garbage again.
		if e.WaitCompiled(ctx) == nil {
			debug.FreeOSMemory()
			tflite.TrimCHeap()
		}
	}()
	if *cfg.Runtime.Watch {
		w, err := e.Watch(ctx)
		if err != nil {
			return stopServing(err)
		}
		defer w.Close()
	}
	defer e.PollSources(ctx)()                                        // registry tags ([oci] poll_interval); nothing to do without sources
	stopMQTT, err := mqtt.StartAll(ctx, e, srv.Metrics.Registry, log) // [pipelines.NAME.mqtt]
	if err != nil {
		return stopServing(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout.Duration)
		defer cancel()
		stopMQTT(sctx)
	}()
	// Camera streams ([pipelines.NAME.stream]): started now, kept in step with the config by
	// reloads, stopped (ffmpeg killed) before the pipelines close; their results to SSE and MQTT.
	sink := mqtt.StartStreamSink(e, srv.Metrics.Registry, log)
	e.StartStreams(stream.NewMetrics(srv.Metrics.Registry))
	defer sink.Close(context.Background())
	started.Store(true)
	log.Info("serving", "address", l.Addr().String(), "config", cfg.File, "pipelines", strings.Join(cfg.PipelineNames(), ","))
	<-ctx.Done() // a signal, or a front end that stopped (it calls stop)
	if err := stopServing(nil); err != nil {
		return err
	}
	log.Info("stopped cleanly")
	return nil
}

// only keeps the named pipeline, its model and the models its plugins may call, so that
// run loads nothing else.
func only(cfg *config.Config, name string) error {
	p, ok := cfg.Pipelines[name]
	if !ok {
		return fmt.Errorf("no pipeline %q in %s (have: %s)", name, cfg.File, strings.Join(cfg.PipelineNames(), ", "))
	}
	cfg.Pipelines = map[string]config.Pipeline{name: p}
	models := map[string]config.Model{p.Model: cfg.Models[p.Model]}
	for _, m := range append(append([]string(nil), p.Pre.Grants.Models...), p.Post.Grants.Models...) {
		models[m] = cfg.Models[m]
	}
	cfg.Models = models
	return nil
}

func cmdRun(g *globals, args []string) error {
	fs := g.flags("run")
	name := fs.String("pipeline", "", "the pipeline to run (required)")
	fs.StringVar(name, "p", "", "shorthand for --pipeline")
	stats := fs.Bool("stats", false, "print stage timings and bytes copied to stderr")
	raw := fs.Bool("raw", false, "write the result exactly as the post plugin returned it (no re-indenting, no newline added)")
	logLevel := fs.String("log-level", "", "log level on stderr, plugin log lines included (default warn, or the config's when it is debug or trace)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *name == "" || fs.NArg() != 1 {
		return &usageError{msg: "want --pipeline NAME and exactly one input FILE"}
	}
	input, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	if err := only(cfg, *name); err != nil {
		return err
	}
	level := *logLevel
	if level == "" {
		level = "warn"
		if l := strings.ToLower(cfg.Log.Level); l == "debug" || l == "trace" {
			level = l
		}
	}
	if hclog.LevelFromString(level) == hclog.NoLevel {
		return &usageError{msg: fmt.Sprintf("--log-level %q: want trace, debug, info, warn or error", level)}
	}
	log := newLogger(config.Log{Level: level, Format: cfg.Log.Format}, g.stderr)
	ctx := context.Background()
	e, err := engine.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer e.Close(ctx)
	p, _ := e.Pipeline(*name)
	if pcm, channels, rate, isWAV, err := wavPCM(input); isWAV {
		// A WAV file streams as a sequence of 10 ms chunks (README "Sequences"); each
		// non-empty result (a detection) is printed on its own line.
		if err != nil {
			return err
		}
		if channels != 1 || rate != 16000 {
			return fmt.Errorf("%s: %d channel(s) at %d Hz; a WAV input streams as 16 kHz mono 16-bit PCM (convert it, e.g. sox IN -r 16000 -c 1 -b 16 OUT.wav)", fs.Arg(0), channels, rate)
		}
		n, err := streamWAV(ctx, p.Pipeline, pcm, func(_ int, res []byte) error {
			_, err := fmt.Fprintf(g.stdout, "%s\n", res)
			return err
		})
		if err != nil {
			return err
		}
		if *stats {
			fmt.Fprintf(g.stderr, "%d chunks of 10 ms (%.2f s)\n", n, float64(n)*0.01)
		}
		return nil
	}
	st, err := p.Pipeline.Run(ctx, bytes.NewReader(input), len(input), func(res []byte, ct string) error {
		if *raw {
			_, err := g.stdout.Write(res)
			return err
		}
		if strings.HasPrefix(ct, "application/json") {
			var buf bytes.Buffer
			if json.Indent(&buf, res, "", "  ") == nil {
				res = buf.Bytes()
			}
		}
		_, err := fmt.Fprintf(g.stdout, "%s\n", res)
		return err
	})
	if err != nil {
		return err
	}
	if *stats {
		fmt.Fprintf(g.stderr, "pre %v  inference %v  post %v  copied %d bytes  zero_copy=%v\n",
			st.Pre, st.Infer, st.Post, st.CopiedBytes, p.Pipeline.ZeroCopy())
	}
	return nil
}

func cmdValidate(g *globals, args []string) error {
	fs := g.flags("validate")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	ctx := context.Background()
	e, err := engine.New(ctx, cfg, hclog.NewNullLogger())
	if err != nil {
		return err
	}
	defer e.Close(ctx)
	fmt.Fprintf(g.stdout, "%s: ok (%d models, %d pipelines; %v)\n", cfg.File, len(cfg.Models), len(cfg.Pipelines), tflite.Probe())
	return nil
}

func cmdInspect(g *globals, args []string) error {
	fs := g.flags("inspect")
	tensors := fs.Bool("tensors", false, "list every tensor of a model with its quantisation (always on for a .tflite file given by name)")
	if err := parse(fs, args); err != nil {
		return err
	}
	w := g.stdout
	fmt.Fprintf(w, "%v\n", tflite.Probe())
	if fs.NArg() > 0 {
		for _, f := range fs.Args() {
			if err := inspectFile(g, f); err != nil {
				return err
			}
		}
		return nil
	}
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	for _, name := range cfg.ModelNames() {
		fmt.Fprintf(w, "\nmodel %s\n", name)
		mc := cfg.Models[name]
		if err := inspectModel(g, mc.Path, mc.XNNPACK == nil || *mc.XNNPACK, *tensors); err != nil {
			return err
		}
		fmt.Fprintf(w, "  accelerator: %s\n", inspectBackend(cfg.Runtime, cfg.Models[name]))
	}
	for _, name := range cfg.PipelineNames() {
		p := cfg.Pipelines[name]
		fmt.Fprintf(w, "\npipeline %s: model %s, %d workers\n", name, p.Model, p.Workers)
		fmt.Fprintf(w, "  sequences: at most %d live, idle timeout %v\n", p.Sequences.Max, p.Sequences.IdleTimeout.Duration)
		for _, rp := range []struct {
			role string
			pl   config.Plugin
		}{{"pre", p.Pre}, {"post", p.Post}} {
			role, pl := rp.role, rp.pl
			fmt.Fprintf(w, "  %s plugin %s\n", role, pl.Path)
			params, err := pl.ResolveParams()
			if err != nil {
				return fmt.Errorf("pipeline %s %s plugin: %w", name, role, err)
			}
			if err := inspectPlugin(g, pl.Path, "    ", params); err != nil {
				return err
			}
			fmt.Fprintf(w, "    budget: memory %d MiB, %d ms per call (%s clock)\n", pl.MemoryLimitMB, pl.TimeoutMS, pl.BudgetClock)
			fmt.Fprintf(w, "    grants: %s\n", grantsString(pl))
		}
	}
	return nil
}

func inspectFile(g *globals, f string) error {
	switch filepath.Ext(f) {
	case ".tflite":
		fmt.Fprintf(g.stdout, "\nmodel %s\n", f)
		return inspectModel(g, f, true, true)
	case ".wasm":
		fmt.Fprintf(g.stdout, "\nplugin %s\n", f)
		return inspectPlugin(g, f, "  ", nil)
	}
	return &usageError{msg: fmt.Sprintf("%s: want a .tflite or .wasm file", f)}
}

// inspectModel prints a model's size, inputs and outputs, its operators (and how many of
// each XNNPACK takes, read from the runtime itself) and, when tensors is set, every tensor
// with its quantisation; otherwise a count of the quantised tensors.
func inspectModel(g *globals, path string, xnnpack, tensors bool) error {
	// With the options the graph is read with, so that the probe process tries those first.
	m, err := tflite.LoadModel(path, tflite.Options{Threads: 1, XNNPACK: xnnpack && tflite.Probe().XNNPACK})
	if err != nil {
		return err
	}
	defer m.Close()
	w := g.stdout
	fmt.Fprintf(w, "  size: %s (%d bytes), sha256 %s\n", humanBytes(int64(m.Size)), m.Size, m.Hash[:16])
	for i, t := range m.Inputs {
		fmt.Fprintf(w, "  input  %d: %v (%d bytes)\n", i, t, t.Bytes)
	}
	for i, t := range m.Outputs {
		fmt.Fprintf(w, "  output %d: %v (%d bytes)\n", i, t, t.Bytes)
	}
	graph, err := m.Graph(xnnpack)
	if err != nil {
		return err
	}
	ops := graph.OpCounts()
	if graph.Delegate != "" {
		fmt.Fprintf(w, "  ops: %d of %d kinds; XNNPACK takes %d in %d partitions, %d run on TFLite's kernels\n",
			len(graph.Ops), len(ops), graph.DelegatedOps(), graph.Partitions, len(graph.Ops)-graph.DelegatedOps())
	} else {
		fmt.Fprintf(w, "  ops: %d of %d kinds, on TFLite's kernels (XNNPACK off or not in this library)\n", len(graph.Ops), len(ops))
	}
	for _, c := range ops {
		if graph.Delegate != "" {
			fmt.Fprintf(w, "    %-28s x%-4d XNNPACK %d\n", c.Name, c.Count, c.Delegated)
		} else {
			fmt.Fprintf(w, "    %-28s x%d\n", c.Name, c.Count)
		}
	}
	perTensor, perAxis := 0, 0
	for _, t := range graph.Tensors {
		switch {
		case t.Quant == nil:
		case t.Quant.PerAxis():
			perAxis++
		default:
			perTensor++
		}
	}
	fmt.Fprintf(w, "  tensors: %d (%d quantised per tensor, %d per axis, %d not quantised)\n",
		len(graph.Tensors), perTensor, perAxis, len(graph.Tensors)-perTensor-perAxis)
	if !tensors {
		return nil
	}
	for _, t := range graph.Tensors {
		kind := ""
		if t.Constant {
			kind = " const"
		}
		fmt.Fprintf(w, "    #%-4d %s %s%v%s %s\n", t.Index, t.Name, t.Type, t.Shape, kind, quantString(t.Quant))
	}
	return nil
}

// quantString describes a tensor's quantisation: scale and zero point, or for per-axis
// quantisation the axis, the number of scales, their range and the zero points.
func quantString(q *tflite.Quantization) string {
	if q == nil {
		return "not quantised"
	}
	if !q.PerAxis() {
		return fmt.Sprintf("q(scale=%g zero=%d)", q.Scales[0], q.ZeroPoints[0])
	}
	lo, hi := q.Scales[0], q.Scales[0]
	for _, s := range q.Scales {
		lo, hi = min(lo, s), max(hi, s)
	}
	zeros := fmt.Sprintf("zero=%d", q.ZeroPoints[0])
	for _, z := range q.ZeroPoints {
		if z != q.ZeroPoints[0] {
			zeros = fmt.Sprintf("zero points %d..", q.ZeroPoints[0])
			break
		}
	}
	return fmt.Sprintf("q(per-axis, axis %d, %d scales %g..%g, %s)", q.Axis, len(q.Scales), lo, hi, zeros)
}

// humanBytes is n in B, KiB or MiB.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func inspectPlugin(g *globals, path, indent string, params map[string]any) error {
	b, err := safefile.ReadFile(path, safefile.MaxPlugin)
	if err != nil {
		return err
	}
	raw, ok, err := abi.CustomSection(b, abi.ManifestSection)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if !ok {
		fmt.Fprintf(g.stdout, "%sno manifest (not loadable)\n", indent)
		return nil
	}
	m, err := abi.ParseManifest(raw)
	if err != nil {
		fmt.Fprintf(g.stdout, "%sinvalid manifest: %v\n", indent, err)
		return nil
	}
	fmt.Fprintf(g.stdout, "%s%s %s (abi %d, kind %s, result %s) %d bytes\n", indent, m.Name, m.Version, m.ABI, m.Kind, m.ResultType(), len(b))
	if m.Description != "" {
		fmt.Fprintf(g.stdout, "%s%s\n", indent, m.Description)
	}
	if len(m.Unknown) > 0 {
		fmt.Fprintf(g.stdout, "%sunknown manifest keys (ignored): %s\n", indent, strings.Join(m.Unknown, ", "))
	}
	// The load-time checks a manifest does not show (exports and signatures, memory,
	// imports, the reactor rule, instantiation, init with no params): what `plugin check` runs.
	if _, err := checkPlugin(g, path, params, "", 0); err != nil {
		fmt.Fprintf(g.stdout, "%snot loadable: %v\n", indent, err)
	} else {
		fmt.Fprintf(g.stdout, "%sload check: ok\n", indent)
	}
	// inspect checks no key: a signature section it has not verified is only "unverified"
	// (`edgehost plugin verify --key` checks one).
	if _, signed, _ := abi.CustomSection(b, abi.SignatureSection); signed {
		fmt.Fprintf(g.stdout, "%ssigned: unverified (inspect checks no key; see edgehost plugin verify)\n", indent)
	} else {
		fmt.Fprintf(g.stdout, "%ssigned: false\n", indent)
	}
	return nil
}

// inspectBackend loads the model as serve would (LiteRT compilation included) and says
// where it runs: "tflite/cpu", "litert/npu", or the fallback and its reason.
func inspectBackend(rc config.Runtime, mc config.Model) string {
	opts := tflite.Options{Threads: mc.Threads, XNNPACK: mc.XNNPACK == nil || *mc.XNNPACK, LiteRT: engine.LiteRTOptions(rc, mc)}
	if opts.LiteRT == nil {
		return tflite.BackendClassic + " (classic TFLite C API)"
	}
	m, err := tflite.LoadModel(mc.Path, opts)
	if err != nil {
		return "none: " + err.Error()
	}
	defer m.Close()
	return m.Backend().String()
}

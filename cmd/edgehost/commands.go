package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/engine"
	"github.com/edgehost/edgehost/host/server"
	"github.com/edgehost/edgehost/host/tflite"
	"github.com/hashicorp/go-hclog"
)

func (g *globals) loadConfig() (*config.Config, error) {
	return config.Load(g.config)
}

func newLogger(c config.Log, w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "edgehost", Level: hclog.LevelFromString(c.Level),
		JSONFormat: c.Format == "json", Output: w})
}

func cmdServe(g *globals, args []string) error {
	fs := g.flags("serve")
	addr := fs.String("addr", "", "listen address, overriding [server] address")
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
	log := newLogger(cfg.Log, g.stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e, err := engine.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer e.Close(context.Background())
	// Compiling the plugins leaves the heap at its peak (~100 MiB of garbage for the shipped
	// config) while little of it stays live: hand it back before serving (RATIONALE.md, RSS).
	debug.FreeOSMemory()
	srv := server.New(e, cfg.Server, log)
	if *cfg.Runtime.Watch {
		w, err := e.Watch(ctx)
		if err != nil {
			return err
		}
		defer w.Close()
	}
	l, err := net.Listen("tcp", cfg.Server.Address)
	if err != nil {
		return err
	}
	log.Info("serving", "address", l.Addr().String(), "config", cfg.File, "pipelines", strings.Join(cfg.PipelineNames(), ","))
	if err := srv.Serve(ctx, l); err != nil {
		return err
	}
	log.Info("stopped cleanly")
	return nil
}

// only keeps the named pipeline and its model, so that run loads nothing else.
func only(cfg *config.Config, name string) error {
	p, ok := cfg.Pipelines[name]
	if !ok {
		return fmt.Errorf("no pipeline %q in %s (have: %s)", name, cfg.File, strings.Join(cfg.PipelineNames(), ", "))
	}
	cfg.Pipelines = map[string]config.Pipeline{name: p}
	cfg.Models = map[string]config.Model{p.Model: cfg.Models[p.Model]}
	return nil
}

func cmdRun(g *globals, args []string) error {
	fs := g.flags("run")
	name := fs.String("pipeline", "", "the pipeline to run (required)")
	fs.StringVar(name, "p", "", "shorthand for --pipeline")
	stats := fs.Bool("stats", false, "print stage timings and bytes copied to stderr")
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
	log := newLogger(config.Log{Level: "warn", Format: cfg.Log.Format}, g.stderr)
	ctx := context.Background()
	e, err := engine.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer e.Close(ctx)
	p, _ := e.Pipeline(*name)
	st, err := p.Pipeline.Run(ctx, bytes.NewReader(input), len(input), func(res []byte, ct string) error {
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
		if err := inspectModel(g, cfg.Models[name].Path); err != nil {
			return err
		}
		fmt.Fprintf(w, "  accelerator: %s\n", inspectBackend(cfg.Runtime, cfg.Models[name]))
	}
	for _, name := range cfg.PipelineNames() {
		p := cfg.Pipelines[name]
		fmt.Fprintf(w, "\npipeline %s: model %s, %d workers\n", name, p.Model, p.Workers)
		for _, rp := range []struct {
			role string
			pl   config.Plugin
		}{{"pre", p.Pre}, {"post", p.Post}} {
			role, pl := rp.role, rp.pl
			fmt.Fprintf(w, "  %s plugin %s\n", role, pl.Path)
			if err := inspectPlugin(g, pl.Path, "    "); err != nil {
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
		return inspectModel(g, f)
	case ".wasm":
		fmt.Fprintf(g.stdout, "\nplugin %s\n", f)
		return inspectPlugin(g, f, "  ")
	}
	return &usageError{msg: fmt.Sprintf("%s: want a .tflite or .wasm file", f)}
}

func inspectModel(g *globals, path string) error {
	m, err := tflite.LoadModel(path, tflite.Options{})
	if err != nil {
		return err
	}
	defer m.Close()
	for i, t := range m.Inputs {
		fmt.Fprintf(g.stdout, "  input  %d: %v (%d bytes)\n", i, t, t.Bytes)
	}
	for i, t := range m.Outputs {
		fmt.Fprintf(g.stdout, "  output %d: %v (%d bytes)\n", i, t, t.Bytes)
	}
	return nil
}

func inspectPlugin(g *globals, path, indent string) error {
	b, err := os.ReadFile(path)
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

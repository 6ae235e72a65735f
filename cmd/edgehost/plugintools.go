package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/pipeline"
	"github.com/edgehost/edgehost/host/plugin"
	"github.com/edgehost/edgehost/host/tflite"
	"github.com/hashicorp/go-hclog"
)

// pluginManifest prints a module's manifest, or embeds one (replacing any) after checking it:
// ABI.md §6 and its section layout, for toolchains that cannot emit custom sections.
func pluginManifest(g *globals, args []string) error {
	fs := g.flags("plugin")
	set := fs.String("set", "", "embed this manifest JSON file (replacing the module's); without it, print the embedded one")
	out := fs.String("out", "", "with --set: where to write the module (default: in place, replaced atomically)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return &usageError{msg: "plugin manifest: want one PLUGIN.wasm (and --set manifest.json to embed one)"}
	}
	in := fs.Arg(0)
	wasm, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	if *set == "" {
		if *out != "" {
			return &usageError{msg: "plugin manifest: --out needs --set"}
		}
		raw, ok, err := abi.CustomSection(wasm, abi.ManifestSection)
		if err != nil {
			return fmt.Errorf("%s: %w", in, err)
		}
		if !ok {
			return fmt.Errorf("%s has no %s custom section: embed one with `edgehost plugin manifest --set manifest.json %s`", in, abi.ManifestSection, in)
		}
		_, err = fmt.Fprintf(g.stdout, "%s\n", strings.TrimRight(string(raw), "\n"))
		return err
	}
	mb, err := os.ReadFile(*set)
	if err != nil {
		return err
	}
	m, err := abi.ParseManifest(mb)
	if err != nil {
		return fmt.Errorf("%s: %w", *set, err)
	}
	res, err := abi.SetCustomSection(wasm, abi.ManifestSection, mb)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if *out == "" {
		*out = in
	}
	if err := writeAtomic(*out, res); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "%s: manifest %s %s (kind %s) embedded\n", *out, m.Name, m.Version, m.Kind)
	warnUnknown(g, *set, m)
	return nil
}

func warnUnknown(g *globals, file string, m abi.Manifest) {
	if len(m.Unknown) > 0 {
		fmt.Fprintf(g.stderr, "warning: %s: manifest keys %s are not known to this host and are ignored (ABI.md §9)\n", file, strings.Join(m.Unknown, ", "))
	}
}

func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// pluginCheck runs every check the host makes when it loads a plugin, without a config:
// manifest, structure limits, validation, the time-budget rewrite, compile, exports and
// their signatures, memory, imports, the reactor rule, instantiation, _initialize,
// edgehost_abi_version and edgehost_init with --params.
func pluginCheck(g *globals, args []string) error {
	fs := g.flags("plugin")
	params := fs.String("params", "{}", "the params JSON object edgehost_init gets")
	kind := fs.String("kind", "", "the role to check it for: pre or post (default: what its manifest says)")
	memMB := fs.Int("memory-limit-mb", 0, "guest memory budget in MiB (default: the host's, 64)")
	var models modelFlags
	fs.Var(&models, "model", "NAME=PATH: a model the plugin may run (ABI 1.3 model calls), granted as NAME; repeat for more")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return &usageError{msg: "plugin check: want one PLUGIN.wasm"}
	}
	var p map[string]any
	if err := json.Unmarshal([]byte(*params), &p); err != nil || p == nil {
		return &usageError{msg: fmt.Sprintf("plugin check: --params must be a JSON object: %q", *params)}
	}
	if *kind != "" && *kind != "pre" && *kind != "post" {
		return &usageError{msg: fmt.Sprintf("plugin check: --kind %q: want pre or post", *kind)}
	}
	var runner plugin.ModelRunner
	var granted []string
	if len(models) > 0 {
		ms := pipeline.NewModels()
		defer ms.Close()
		for _, nm := range models {
			tm, err := tflite.LoadModel(nm[1], tflite.Options{Threads: 1, XNNPACK: true})
			if err != nil {
				return fmt.Errorf("plugin check: --model %s=%s: %w", nm[0], nm[1], err)
			}
			defer tm.Close()
			_ = ms.Set(nm[0], tm, 1)
			granted = append(granted, nm[0])
		}
		runner = ms
	}
	m, err := checkPluginWith(g, fs.Arg(0), p, abi.Kind(*kind), uint64(*memMB)<<20, runner, granted)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "%s: ok: %s %s (abi %d, kind %s, result %s)\n", fs.Arg(0), m.Manifest.Name, m.Manifest.Version, m.Manifest.ABI, m.Manifest.Kind, m.Manifest.ResultType())
	warnUnknown(g, fs.Arg(0), m.Manifest)
	return nil
}

// checkPlugin loads path in a fresh runtime, as serve would, and closes it again; plugin
// log lines go to stderr at warn level.
func checkPlugin(g *globals, path string, params map[string]any, kind abi.Kind, mem uint64) (*plugin.Module, error) {
	return checkPluginWith(g, path, params, kind, mem, nil, nil)
}

// checkPluginWith is checkPlugin with models the plugin may call (its init may describe them).
func checkPluginWith(g *globals, path string, params map[string]any, kind abi.Kind, mem uint64, runner plugin.ModelRunner, models []string) (*plugin.Module, error) {
	ctx := context.Background()
	log := hclog.New(&hclog.LoggerOptions{Name: "edgehost", Level: hclog.Warn, Output: g.stderr})
	rt, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{Logger: log})
	if err != nil {
		return nil, err
	}
	defer rt.Close(ctx)
	if runner != nil {
		rt.SetModelRunner(runner)
	}
	m, err := rt.Load(ctx, plugin.Config{Path: path, Params: params, WantKind: kind, MemoryLimit: mem, Grants: plugin.Grants{Models: models}})
	if err != nil {
		return nil, err
	}
	m.Close(ctx)
	return m, nil
}

// modelFlags collects repeated --model NAME=PATH flags.
type modelFlags [][2]string

func (f *modelFlags) String() string { return fmt.Sprint(*f) }

func (f *modelFlags) Set(v string) error {
	name, path, ok := strings.Cut(v, "=")
	if !ok || name == "" || path == "" {
		return fmt.Errorf("want NAME=PATH, got %q", v)
	}
	*f = append(*f, [2]string{name, path})
	return nil
}

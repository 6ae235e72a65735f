// Command edgehost runs native TFLite inference with WebAssembly pre/post-processing
// plugins. See README.md.
//
//	edgehost [--config FILE] [serve]        serve the configured pipelines over HTTP
//	edgehost [--config FILE] run -p NAME F  run one input file through a pipeline
//	edgehost [--config FILE] validate       check config, models and plugins
//	edgehost [--config FILE] inspect [F...] show model tensors and plugin manifests
//	edgehost plugin manifest|check F        embed or print a manifest; run every load check
//	edgehost plugin sign|verify|keygen      sign plugins for trusted deployment
//	edgehost plugin push|pull REF FILE      plugins and models to and from an OCI registry
package main

import (
	"errors"
	"flag"
	"fmt"
	"github.com/edgehost/edgehost/host/tflite"
	"io"
	"os"
	"strings"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed (bad config, failed request, ...)
	exitUsage   = 2 // wrong flags or arguments
)

type command struct {
	name, args, help string
	run              func(g *globals, args []string) error
}

var commands []command

func init() {
	commands = []command{
		{"serve", "", "Serve every configured pipeline and model over HTTP (the default command).", cmdServe},
		{"run", "--pipeline NAME FILE", "Run one input file through a pipeline and print the result.", cmdRun},
		{"validate", "", "Load the config, every model and every plugin, then exit: 0 when all are valid.", cmdValidate},
		{"inspect", "[FILE.tflite|FILE.wasm ...]", "Show model tensors and plugin manifests (of the config, or of the files given).", cmdInspect},
		{"plugin", "manifest|check|keygen|sign|verify|push|pull ...", "Embed or print a plugin's manifest, run every load-time check on a plugin, make signing keys, sign a plugin, verify a signature, push or pull a plugin or model to or from an OCI registry.", cmdPlugin},
	}
}

// globals are the flags accepted before (and by) every command.
type globals struct {
	config string
	stdout io.Writer
	stderr io.Writer
}

// usageError is a wrong invocation: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func main() {
	if len(os.Args) > 1 && os.Args[1] == probeCommand {
		os.Exit(runProbe(os.Args[2:], os.Stderr))
	}
	// Every model this process loads is loaded in a probe process first (tflite.ModelProbe).
	tflite.ModelProbe = probeModel
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
}

// Main runs the CLI and returns its exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("edgehost", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&g.config, "config", "config.toml", "the config file")
	fs.Usage = func() { usage(stderr, fs) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	rest := fs.Args()
	name := "serve"
	if len(rest) > 0 {
		name, rest = rest[0], rest[1:]
	}
	if name == "help" {
		usage(stdout, fs)
		return exitOK
	}
	for _, c := range commands {
		if c.name == name {
			err := c.run(g, rest)
			var ue *usageError
			switch {
			case err == nil:
				return exitOK
			case errors.Is(err, flag.ErrHelp):
				return exitOK
			case errors.As(err, &ue):
				fmt.Fprintf(stderr, "edgehost %s: %v\nRun 'edgehost %s --help' for usage.\n", name, err, name)
				return exitUsage
			default:
				fmt.Fprintf(stderr, "edgehost %s: %v\n", name, err)
				return exitFailure
			}
		}
	}
	fmt.Fprintf(stderr, "edgehost: unknown command %q\n", name)
	usage(stderr, fs)
	return exitUsage
}

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: edgehost [--config FILE] [COMMAND] [ARGS]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.help)
	}
	fmt.Fprintf(w, "\nGlobal flags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprintf(w, "\nRun 'edgehost COMMAND --help' for a command's flags.\n")
}

// flags makes a command's flag set; --config is accepted there too.
func (g *globals) flags(c string) *flag.FlagSet {
	fs := flag.NewFlagSet("edgehost "+c, flag.ContinueOnError)
	fs.SetOutput(g.stderr)
	fs.StringVar(&g.config, "config", g.config, "the config file")
	for _, cmd := range commands {
		if cmd.name == c {
			fs.Usage = func() {
				fmt.Fprintf(g.stderr, "Usage: edgehost %s %s\n\n%s\n\nFlags:\n", c, cmd.args, cmd.help)
				fs.PrintDefaults()
			}
		}
	}
	return fs
}

// parse parses a command's flags, mapping flag errors to usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{msg: strings.TrimSpace(err.Error())}
	}
	return nil
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/tflite"
)

// Paths relative to this package's directory, where go test runs.
const (
	shippedConfig = "../../config.toml"
	peacock       = "../../.deps/models/peacock.png"
	ssdModel      = "../../.deps/models/ssd_detect.tflite"
	ssdPlugin     = "../../plugins/examples/ssd-go/ssd-go.wasm"
	classifyWasm  = "../../plugins/examples/classify-go/classify-go.wasm"
)

// edgehost runs Main and returns its exit code and output.
func edgehost(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(args, &out, &errb)
	t.Logf("edgehost %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out.String(), errb.String())
	return code, out.String(), errb.String()
}

// repoRoot is the absolute path of the repository.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

var relPathRE = regexp.MustCompile(`"((?:\.deps|plugins)/[^"]*)"`)

// tempConfig writes a copy of the shipped config.toml into a temp directory and returns its
// path. The copy's relative paths are made absolute (they are relative to the config
// file's directory), the wazero cache is kept in memory and hot reload is off; edit, if
// non-nil, changes the text further.
func tempConfig(t *testing.T, edit func(string) string) string {
	t.Helper()
	root := repoRoot(t)
	b, err := os.ReadFile(shippedConfig)
	if err != nil {
		t.Fatal(err)
	}
	s := relPathRE.ReplaceAllStringFunc(string(b), func(m string) string {
		return `"` + filepath.Join(root, strings.Trim(m, `"`)) + `"`
	})
	for _, r := range []struct{ re, repl string }{
		{`(?m)^cache_dir = .*$`, `cache_dir = ""`},
		{`(?m)^watch = .*$`, `watch = false`},
	} {
		re := regexp.MustCompile(r.re)
		if !re.MatchString(s) {
			t.Fatalf("tempConfig: %s not found in %s", r.re, shippedConfig)
		}
		s = re.ReplaceAllString(s, r.repl)
	}
	if edit != nil {
		s = edit(s)
	}
	f := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(f, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestTempConfig checks the helper itself: the copy loads and names existing files only.
func TestTempConfig(t *testing.T) {
	c, err := config.Load(tempConfig(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Runtime.CacheDir != "" || *c.Runtime.Watch {
		t.Errorf("cache_dir %q, watch %v: want \"\" and false", c.Runtime.CacheDir, *c.Runtime.Watch)
	}
	var files []string
	for _, m := range c.Models {
		files = append(files, m.Path)
	}
	for _, p := range c.Pipelines {
		for _, pl := range []config.Plugin{p.Pre, p.Post} {
			files = append(files, pl.Path)
			for _, f := range pl.ParamsFiles {
				files = append(files, f)
			}
		}
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("temp config names a missing file: %v", err)
		}
	}
}

func TestUsage(t *testing.T) {
	commandNames := []string{"serve", "run", "validate", "inspect", "plugin"}
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     []string // substrings
		stderr     []string
		noStdout   bool
		usageOnErr bool // stderr carries the command list
	}{
		{name: "--help", args: []string{"--help"}, code: exitOK, stderr: commandNames, noStdout: true},
		{name: "-h", args: []string{"-h"}, code: exitOK, stderr: commandNames, noStdout: true},
		{name: "help", args: []string{"help"}, code: exitOK, stdout: append([]string{"Usage: edgehost", "--config"}, commandNames...)},
		{name: "unknown command", args: []string{"frobnicate"}, code: exitUsage, stderr: append([]string{`unknown command "frobnicate"`}, commandNames...), noStdout: true},
		{name: "unknown global flag", args: []string{"--bogus", "validate"}, code: exitUsage, stderr: []string{"flag provided but not defined: -bogus"}, noStdout: true},
		{name: "run without --pipeline", args: []string{"run", peacock}, code: exitUsage, stderr: []string{"edgehost run: want --pipeline NAME and exactly one input FILE", "edgehost run --help"}, noStdout: true},
		{name: "run without file", args: []string{"run", "-p", "classify"}, code: exitUsage, stderr: []string{"exactly one input FILE"}, noStdout: true},
		{name: "run with two files", args: []string{"run", "-p", "classify", peacock, peacock}, code: exitUsage, stderr: []string{"exactly one input FILE"}, noStdout: true},
		{name: "run unknown flag", args: []string{"run", "--fast", "-p", "classify", peacock}, code: exitUsage, stderr: []string{"flag provided but not defined: -fast"}, noStdout: true},
		{name: "run --help", args: []string{"run", "--help"}, code: exitOK, stderr: []string{"Usage: edgehost run --pipeline NAME FILE", "-pipeline", "-stats", "-config"}, noStdout: true},
		{name: "validate --help", args: []string{"validate", "--help"}, code: exitOK, stderr: []string{"Usage: edgehost validate"}, noStdout: true},
		{name: "inspect --help", args: []string{"inspect", "-h"}, code: exitOK, stderr: []string{"Usage: edgehost inspect"}, noStdout: true},
		{name: "serve --help", args: []string{"serve", "--help"}, code: exitOK, stderr: []string{"Usage: edgehost serve", "-addr", "-grpc-addr"}, noStdout: true},
		{name: "serve extra argument", args: []string{"serve", "now"}, code: exitUsage, stderr: []string{`unexpected arguments ["now"]`}, noStdout: true},
		{name: "plugin without subcommand", args: []string{"plugin"}, code: exitUsage, stderr: []string{"want a subcommand: manifest, check, keygen, sign, verify, push or pull"}, noStdout: true},
		{name: "plugin unknown subcommand", args: []string{"plugin", "frob"}, code: exitUsage, stderr: []string{`unknown plugin subcommand "frob"`}, noStdout: true},
		{name: "plugin keygen without --out", args: []string{"plugin", "keygen"}, code: exitUsage, stderr: []string{"--out FILE is required"}, noStdout: true},
		{name: "plugin sign without --key", args: []string{"plugin", "sign", classifyWasm}, code: exitUsage, stderr: []string{"want --key FILE and one PLUGIN.wasm"}, noStdout: true},
		{name: "plugin verify without file", args: []string{"plugin", "verify"}, code: exitUsage, stderr: []string{"want one PLUGIN.wasm"}, noStdout: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := edgehost(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q", s)
				}
			}
			for _, s := range tc.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q", s)
				}
			}
			if tc.noStdout && stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Run("shipped config", func(t *testing.T) {
		code, stdout, _ := edgehost(t, "--config", shippedConfig, "validate")
		if code != exitOK {
			t.Fatalf("exit %d, want 0", code)
		}
		want := filepath.Join(repoRoot(t), "config.toml") + ": ok (5 models, 7 pipelines; tflite "
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	})
	t.Run("--config after the command", func(t *testing.T) {
		// Each command accepts --config too; inspect is the cheapest that loads the config.
		code, stdout, _ := edgehost(t, "inspect", "--config", shippedConfig)
		if code != exitOK || !strings.Contains(stdout, "pipeline classify-go: ") {
			t.Errorf("exit %d: want 0 and the shipped pipelines", code)
		}
	})
	t.Run("unknown key", func(t *testing.T) {
		cfg := tempConfig(t, func(s string) string {
			return strings.Replace(s, "[pipelines.classify]\n", "[pipelines.classify]\nworker = 2\n", 1)
		})
		b, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		line := 0
		for i, l := range strings.Split(string(b), "\n") {
			if l == "worker = 2" {
				line = i + 1
			}
		}
		code, stdout, stderr := edgehost(t, "--config", cfg, "validate")
		if code != exitFailure {
			t.Errorf("exit %d, want 1", code)
		}
		if stdout != "" {
			t.Errorf("stdout = %q, want nothing", stdout)
		}
		if want := fmt.Sprintf("%s:%d: pipelines.classify.worker: unknown key", cfg, line); !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	})
	t.Run("several invalid values", func(t *testing.T) {
		cfg := tempConfig(t, func(s string) string {
			s = strings.Replace(s, `level = "info"`, `level = "loud"`, 1)
			return strings.Replace(s, `model = "ssd"`, `model = "yolo"`, 1)
		})
		code, _, stderr := edgehost(t, "--config", cfg, "validate")
		if code != exitFailure {
			t.Errorf("exit %d, want 1", code)
		}
		b, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		level := 0
		for i, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, `level = "loud"`) {
				level = i + 1
			}
		}
		for _, want := range []string{fmt.Sprintf("%s:%d: log.level: ", cfg, level), `pipelines.detect.model: model "yolo" is not defined`} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr lacks %q", want)
			}
		}
	})
	t.Run("plugin missing", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "gone.wasm")
		cfg := tempConfig(t, func(s string) string {
			return regexp.MustCompile(`"[^"]*/imagepre-go\.wasm"`).ReplaceAllString(s, `"`+missing+`"`)
		})
		code, _, stderr := edgehost(t, "--config", cfg, "validate")
		if code != exitFailure || !strings.Contains(stderr, missing) {
			t.Errorf("exit %d, want 1 and stderr naming %s", code, missing)
		}
	})
	t.Run("config missing", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "none.toml")
		code, _, stderr := edgehost(t, "--config", missing, "validate")
		if code != exitFailure || !strings.Contains(stderr, missing) {
			t.Errorf("exit %d, want 1 and stderr naming %s", code, missing)
		}
	})
}

func TestRun(t *testing.T) {
	t.Run("classify peacock", func(t *testing.T) {
		code, stdout, stderr := edgehost(t, "--config", shippedConfig, "run", "-p", "classify", "--stats", peacock)
		if code != exitOK {
			t.Fatalf("exit %d, want 0", code)
		}
		var res struct {
			Top []struct {
				Index int     `json:"index"`
				Label string  `json:"label"`
				Score float64 `json:"score"`
			} `json:"top"`
		}
		if err := json.Unmarshal([]byte(stdout), &res); err != nil {
			t.Fatalf("stdout is not JSON: %v", err)
		}
		if len(res.Top) != 5 || res.Top[0].Label != "peacock" || res.Top[0].Score < 0.5 {
			t.Errorf("top = %+v, want 5 entries, peacock first with score > 0.5", res.Top)
		}
		if !strings.Contains(stdout, "\n  ") {
			t.Errorf("JSON result is not indented")
		}
		for _, want := range []string{"pre ", "inference ", "post ", "copied ", "zero_copy="} {
			if !strings.Contains(stderr, want) {
				t.Errorf("--stats: stderr lacks %q", want)
			}
		}
	})
	t.Run("unknown pipeline", func(t *testing.T) {
		code, stdout, stderr := edgehost(t, "--config", shippedConfig, "run", "--pipeline", "nope", peacock)
		if code != exitFailure {
			t.Errorf("exit %d, want 1", code)
		}
		if stdout != "" {
			t.Errorf("stdout = %q, want nothing", stdout)
		}
		if want := `no pipeline "nope"`; !strings.Contains(stderr, want) || !strings.Contains(stderr, "classify, classify-go, detect") {
			t.Errorf("stderr lacks %q and the list of pipelines", want)
		}
	})
	t.Run("missing input", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "none.png")
		code, _, stderr := edgehost(t, "--config", shippedConfig, "run", "-p", "classify", missing)
		if code != exitFailure || !strings.Contains(stderr, missing) {
			t.Errorf("exit %d, want 1 and stderr naming %s", code, missing)
		}
	})
	t.Run("input that is not an image", func(t *testing.T) {
		code, stdout, _ := edgehost(t, "--config", shippedConfig, "run", "-p", "classify", shippedConfig)
		if code != exitFailure || stdout != "" {
			t.Errorf("exit %d, stdout %q: want 1 and nothing", code, stdout)
		}
	})
}

func TestInspect(t *testing.T) {
	t.Run("shipped config", func(t *testing.T) {
		code, stdout, _ := edgehost(t, "--config", shippedConfig, "inspect")
		if code != exitOK {
			t.Fatalf("exit %d, want 0", code)
		}
		for _, want := range []string{
			"tflite ",
			"model mobilenet\n",
			"input  0: Placeholder UINT8[1 224 224 3]",
			"output 0: MobilenetV1/Predictions/Softmax UINT8[1 1001]",
			"model ssd\n",
			"normalized_input_image_tensor",
			"pipeline classify: model mobilenet, 2 workers",
			"pipeline classify-go: model mobilenet, 2 workers",
			"pipeline detect: model ssd, 2 workers",
			"imagepre-go 1.3.0 (abi 1, kind pre",
			"classify-go 1.0.0 (abi 1, kind post",
			"imagepre-c 1.3.0",
			"classify-c 1.0.0",
			"ssd-c 1.0.0",
			"signed: false",
			"budget: memory 64 MiB, 1000 ms per call",
			"budget: memory 32 MiB, 1000 ms per call",
			"budget: memory 16 MiB, 1000 ms per call",
			"grants: none",
			"  size: 4.1 MiB (4276100 bytes)",
			"  ops: 31 of 5 kinds; XNNPACK takes 29 in 2 partitions, 2 run on TFLite's kernels\n",
			"    DEPTHWISE_CONV_2D            x13   XNNPACK 13\n",
			"    SOFTMAX                      x1    XNNPACK 0\n",
			"  ops: 64 of 6 kinds; XNNPACK takes 61 in 2 partitions",
			"    TFLite_Detection_PostProcess x1    XNNPACK 0\n",
			"quantised per tensor",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("stdout lacks %q", want)
			}
		}
		t.Run("pre before post", func(t *testing.T) {
			// Each pipeline should list its pre plugin before its post plugin.
			for _, name := range []string{"classify", "classify-go", "detect"} {
				i := strings.Index(stdout, "\npipeline "+name+":")
				block := stdout[i+1:]
				if j := strings.Index(block, "\n\n"); j >= 0 {
					block = block[:j]
				}
				pre, post := strings.Index(block, "  pre plugin "), strings.Index(block, "  post plugin ")
				if pre < 0 || post < 0 {
					t.Fatalf("pipeline %s: pre or post plugin not listed", name)
				}
				if pre > post {
					t.Errorf("pipeline %s lists post before pre", name)
				}
			}
		})
	})
	t.Run("files", func(t *testing.T) {
		code, stdout, _ := edgehost(t, "inspect", ssdModel, ssdPlugin)
		if code != exitOK {
			t.Fatalf("exit %d, want 0", code)
		}
		for _, want := range []string{
			"model " + ssdModel + "\n",
			"input  0: normalized_input_image_tensor UINT8[1 300 300 3]",
			"output 3: TFLite_Detection_PostProcess:3 FP32[1]",
			"  ops: 64 of 6 kinds; XNNPACK takes 61",
			// every tensor, with its quantisation (a file named alone lists them)
			"normalized_input_image_tensor uint8[1 300 300 3] q(scale=0.0078125 zero=128)\n",
			"BoxPredictor_0/BoxEncodingPredictor/Conv2D_bias int32[12] const q(scale=",
			"BoxPredictor_0/stack int32[4] const not quantised\n",
			"plugin " + ssdPlugin + "\n",
			"ssd-go 1.0.0 (abi 1, kind post",
			"signed: false",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("stdout lacks %q", want)
			}
		}
	})
	t.Run("not a model or plugin", func(t *testing.T) {
		code, _, stderr := edgehost(t, "inspect", "foo.txt")
		if code != exitUsage || !strings.Contains(stderr, "foo.txt: want a .tflite or .wasm file") {
			t.Errorf("exit %d, want 2 and stderr naming foo.txt", code)
		}
	})
	t.Run("missing model", func(t *testing.T) {
		code, _, _ := edgehost(t, "inspect", filepath.Join(t.TempDir(), "none.tflite"))
		if code != exitFailure {
			t.Errorf("exit %d, want 1", code)
		}
	})
	t.Run("wasm that is not wasm", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "junk.wasm")
		if err := os.WriteFile(f, []byte("not wasm at all"), 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := edgehost(t, "inspect", f)
		if code != exitFailure || !strings.Contains(stderr, f) {
			t.Errorf("exit %d, want 1 and stderr naming %s", code, f)
		}
	})
}

// flipCodeByte returns a copy of wasm with one byte in the middle of its code section
// flipped: the module still splits into sections, but is no longer what was signed.
func flipCodeByte(t *testing.T, wasm []byte) []byte {
	t.Helper()
	secs, err := abi.Sections(wasm)
	if err != nil {
		t.Fatal(err)
	}
	off := 0
	for _, s := range secs {
		if s.ID == 10 { // code
			out := append([]byte(nil), wasm...)
			i := off + len(s.Raw) - len(s.Payload) + len(s.Payload)/2
			out[i] ^= 0x01
			return out
		}
		off += len(s.Raw)
	}
	t.Fatal("no code section")
	return nil
}

func TestPluginSigning(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "k")
	signed := filepath.Join(dir, "signed.wasm")
	original, err := os.ReadFile(classifyWasm)
	if err != nil {
		t.Fatal(err)
	}

	code, stdout, _ := edgehost(t, "plugin", "keygen", "--out", key)
	if code != exitOK {
		t.Fatalf("keygen: exit %d, want 0", code)
	}
	keyID := regexp.MustCompile(`^key ([0-9a-f]{16}): `).FindStringSubmatch(stdout)
	if keyID == nil {
		t.Fatalf("keygen: stdout %q does not start with the key id", stdout)
	}
	if st, err := os.Stat(key); err != nil {
		t.Errorf("private key: %v", err)
	} else if st.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v, want 0600", st.Mode().Perm())
	}
	if _, err := os.Stat(key + ".pub"); err != nil {
		t.Fatalf("public key: %v", err)
	}

	code, stdout, _ = edgehost(t, "plugin", "sign", "--key", key, "--out", signed, classifyWasm)
	if code != exitOK || !strings.Contains(stdout, signed+": signed with key "+keyID[1]) {
		t.Fatalf("sign: exit %d, want 0 and a line naming %s and key %s", code, signed, keyID[1])
	}
	if now, err := os.ReadFile(classifyWasm); err != nil || !bytes.Equal(now, original) {
		t.Fatalf("sign --out modified the input module (err %v)", err)
	}
	if _, err := os.Stat(signed + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("sign left %s.tmp behind", signed)
	}
	signedBytes, err := os.ReadFile(signed)
	if err != nil {
		t.Fatal(err)
	}

	// A second key, to check that only the signing key verifies.
	other := filepath.Join(dir, "other")
	if code, _, _ := edgehost(t, "plugin", "keygen", "--out", other); code != exitOK {
		t.Fatalf("keygen other: exit %d", code)
	}
	tampered := filepath.Join(dir, "tampered.wasm")
	if err := os.WriteFile(tampered, flipCodeByte(t, signedBytes), 0o644); err != nil {
		t.Fatal(err)
	}
	unsignedCopy := filepath.Join(dir, "unsigned.wasm")
	if err := os.WriteFile(unsignedCopy, original, 0o644); err != nil {
		t.Fatal(err)
	}
	trustConfig := tempConfig(t, func(s string) string {
		return s + fmt.Sprintf("\n[trust]\nkey_files = [%q]\n", key+".pub")
	})

	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr []string // any one of them
	}{
		{"signed", []string{"plugin", "verify", "--pub", key + ".pub", signed}, exitOK, signed + ": signature ok (key " + keyID[1] + ")", nil},
		{"unsigned original", []string{"plugin", "verify", "--pub", key + ".pub", classifyWasm}, exitFailure, "", []string{"not signed"}},
		{"code byte flipped", []string{"plugin", "verify", "--pub", key + ".pub", tampered}, exitFailure, "", []string{"modified after signing", "section"}},
		{"other key", []string{"plugin", "verify", "--pub", other + ".pub", signed}, exitFailure, "", []string{"signed by key " + keyID[1] + ", which is not among the trusted keys"}},
		{"trusted keys from --config", []string{"--config", trustConfig, "plugin", "verify", signed}, exitOK, "signature ok (key " + keyID[1] + ")", nil},
		{"no trusted keys in the shipped config", []string{"--config", shippedConfig, "plugin", "verify", signed}, exitFailure, "", []string{"not among the trusted keys"}},
		{"bad public key file", []string{"plugin", "verify", "--pub", classifyWasm, signed}, exitFailure, "", []string{"not a base64 ed25519 public key"}},
		{"signed plugin shows in inspect, unverified", []string{"inspect", signed}, exitOK, "signed: unverified", nil},
		{"sign in place", []string{"plugin", "sign", "--key", other, unsignedCopy}, exitOK, unsignedCopy + ": signed with key ", nil},
		{"verify signed in place", []string{"plugin", "verify", "--pub", other + ".pub", unsignedCopy}, exitOK, "signature ok", nil},
	}
	t.Run("sign with the public key file", func(t *testing.T) {
		// A private key file carries a prefix, so the .pub file is refused.
		code, _, stderr := edgehost(t, "plugin", "sign", "--key", key+".pub", "--out", filepath.Join(dir, "x.wasm"), classifyWasm)
		if code != exitFailure || !strings.Contains(stderr, key+".pub") {
			t.Errorf("exit %d, want 1 and stderr naming %s.pub", code, key)
		}
	})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := edgehost(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			if !strings.Contains(stdout, tc.stdout) {
				t.Errorf("stdout lacks %q", tc.stdout)
			}
			if tc.stdout == "" && stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			if len(tc.stderr) > 0 {
				found := false
				for _, s := range tc.stderr {
					found = found || strings.Contains(stderr, s)
				}
				if !found {
					t.Errorf("stderr has none of %q", tc.stderr)
				}
			}
		})
	}
}

// freePort returns a TCP address on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// startServe runs Main serving a copy of the shipped config on a free port, and waits
// until /v2/health/ready answers 200. It returns the base URL and the channel Main's exit
// code arrives on; stdout and stderr collect Main's output.
func startServe(t *testing.T, stdout, stderr *bytes.Buffer) (string, <-chan int) {
	t.Helper()
	// Main logs the listening address to the process's stderr, not to the writer it is
	// given, so the address cannot be learnt from port 0: pick a free port instead, and
	// try again in the unlikely case someone takes it before Main listens.
	for attempt := 1; ; attempt++ {
		addr := freePort(t)
		cfg := tempConfig(t, func(s string) string {
			return regexp.MustCompile(`(?m)^address = .*$`).ReplaceAllString(s, fmt.Sprintf("address = %q", addr))
		})
		stdout.Reset()
		stderr.Reset()
		done := make(chan int, 1)
		go func() { done <- Main([]string{"--config", cfg}, stdout, stderr) }()

		base := "http://" + addr
		client := &http.Client{Timeout: 5 * time.Second}
		deadline := time.Now().Add(3 * time.Minute) // generous: a busy machine starts slowly
		for {
			select {
			case code := <-done:
				if attempt < 3 && strings.Contains(stderr.String(), "address already in use") {
					t.Logf("%s was taken, retrying", addr)
				} else {
					t.Fatalf("Main returned %d before serving\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
				}
			default:
				if time.Now().After(deadline) {
					t.Fatal("not ready within 30s")
				}
				resp, err := client.Get(base + "/v2/health/ready")
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						return base, done
					}
				}
				time.Sleep(50 * time.Millisecond)
				continue
			}
			break
		}
	}
}

func TestServe(t *testing.T) {
	var stdout, stderr bytes.Buffer
	base, done := startServe(t, &stdout, &stderr)
	addr := strings.TrimPrefix(base, "http://")
	client := &http.Client{Timeout: 10 * time.Second}
	// From here on, Main's signal handler is installed (it is before the listener opens):
	// make sure the server is stopped even when a check below fails.
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if !stopped {
			stop()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
			}
		}
	})

	img, err := os.ReadFile(peacock)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Post(base+"/v1/pipelines/classify", "image/png", bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"label":"peacock"`) {
		t.Errorf("POST /v1/pipelines/classify: %s %s, want 200 with peacock", resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}

	resp, err = client.Post(base+"/v1/pipelines/nope", "image/png", bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST /v1/pipelines/nope: %s, want 404", resp.Status)
	}

	stop()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("Main returned %d after SIGTERM, want 0\nstderr:\n%s", code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Main did not return within 20s of SIGTERM")
	}
	if stdout.Len() != 0 {
		t.Errorf("serve wrote to stdout: %q", stdout.String())
	}
	// The port is released.
	if l, err := net.Listen("tcp", addr); err != nil {
		t.Errorf("after shutdown, %s is still in use: %v", addr, err)
	} else {
		l.Close()
	}
}

// TestQuantString: how inspect writes per-tensor and per-axis quantisation.
func TestQuantString(t *testing.T) {
	for _, c := range []struct {
		q    *tflite.Quantization
		want string
	}{
		{nil, "not quantised"},
		{&tflite.Quantization{Scales: []float32{0.5}, ZeroPoints: []int32{128}}, "q(scale=0.5 zero=128)"},
		{&tflite.Quantization{Scales: []float32{0.25, 0.5, 0.125}, ZeroPoints: []int32{0, 0, 0}, Axis: 3}, "q(per-axis, axis 3, 3 scales 0.125..0.5, zero=0)"},
		{&tflite.Quantization{Scales: []float32{0.25, 0.5}, ZeroPoints: []int32{1, 2}}, "q(per-axis, axis 0, 2 scales 0.25..0.5, zero points 1..)"},
	} {
		if got := quantString(c.q); got != c.want {
			t.Errorf("quantString(%+v) = %q, want %q", c.q, got, c.want)
		}
	}
}

package plugin_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/edgehost/edgehost/abi"
	. "github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/plugin"
	"github.com/edgehost/edgehost/internal/testservers"
	"github.com/hashicorp/go-hclog"
)

// Faults a plugin author meets first: each is rejected at load with an error that names the
// rule and the fix.
func TestLoadChecksNameTheFix(t *testing.T) {
	rt := newRuntime(t)
	for _, c := range []struct {
		name string
		spec PluginSpec
		want []string
	}{
		{"command", PluginSpec{Start: []byte{0x0b}, StartExport: "_start"},
			[]string{"exports _start", "reactor", "-mexec-model=reactor", "cdylib"}},
		{"pre-signature", PluginSpec{PreSignature: true},
			[]string{"export edgehost_pre has signature [i32 i32] -> [i32]", "want 1 i32 params and 1 i32 results"}},
		{"no-memory", PluginSpec{NoMemory: true}, []string{`missing exported memory "memory"`}},
		{"import-memory", PluginSpec{ImportMemory: true}, []string{"imports its memory (env.memory)", "--import-memory"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err, _ := loadRaw(t, rt, c.name, RawPlugin(c.spec), plugin.Config{})
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestUnsetResult: a post call that returns ok without setting a result is an error naming
// the fix, not an empty 200; and it is not a trap (the instance stays usable).
func TestUnsetResult(t *testing.T) {
	rt := newRuntime(t)
	inst := rawInstance(t, rt, "no-result", RawPlugin(PluginSpec{}), plugin.Config{})
	_, err := inst.Post(context.Background(), nil)
	var se *plugin.StatusError
	var trap *plugin.TrapError
	if !errors.As(err, &se) || !se.Host || errors.As(err, &trap) || !strings.Contains(err.Error(), "set no result") {
		t.Fatalf("err %v, want a host-side status error saying no result was set", err)
	}
	if inst.Broken() != nil {
		t.Fatalf("instance broken by a rejected result: %v", inst.Broken())
	}
	if strings.Contains(err.Error(), "trapped") {
		t.Errorf("a host-side check reads as a trap: %v", err)
	}
}

// TestStdioAndTraps: without any grant, a guest's stdout/stderr reach the host log (debug
// level), bounded by the per-call log budget; a trap's error is one line without escaped
// tabs or newlines, and carries the set_error message and the last lines of output.
func TestStdioAndTraps(t *testing.T) {
	var logs testservers.LogBuffer
	ctx := context.Background()
	rt, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: &logs})})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	m, err := rt.Load(ctx, plugin.Config{Path: Hostile(t, "STDERR_TRAP", abi.KindBoth)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	inst, err := m.NewInstance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(ctx)
	if _, err := inst.InputBuffer(ctx, 1); err != nil {
		t.Fatal(err)
	}
	err = inst.Pre(ctx, 1)
	var trap *plugin.TrapError
	if !errors.As(err, &trap) {
		t.Fatalf("err %v, want a trap", err)
	}
	msg := err.Error()
	for _, w := range []string{"trapped: plugin error: index out of bounds; wasm error: unreachable",
		"last output:", "stderr: panicked at 'index out of bounds: the len is 3 but the index is 7'", "stdout: progress 8"} {
		if !strings.Contains(msg, w) {
			t.Errorf("trap error does not say %q:\n%s", w, msg)
		}
	}
	if strings.ContainsAny(msg, "\n\t") || strings.Contains(msg, `\t`) || strings.Contains(msg, `\n`) {
		t.Errorf("trap error is not one clean line:\n%s", msg)
	}
	if n := strings.Count(msg, "stdout: progress"); n > plugin.TailLines {
		t.Errorf("trap error carries %d output lines, want at most %d", n, plugin.TailLines)
	}
	l := logs.String()
	if !strings.Contains(l, "progress 0") || !strings.Contains(l, "stream=stdout") {
		t.Errorf("stdout did not reach the log:\n%.2000s", l)
	}
	if n := strings.Count(l, "progress "); n != plugin.LogBudget {
		t.Errorf("%d stdout lines logged, want the log budget of %d", n, plugin.LogBudget)
	}
	if !strings.Contains(l, "plugin log lines dropped over budget") {
		t.Errorf("dropped lines not reported:\n%.2000s", l)
	}
}

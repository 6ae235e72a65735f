package config_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/config"
)

func TestSequencesSection(t *testing.T) {
	dir := t.TempDir()
	base := `[models.m]
path = "m.tflite"
[pipelines.p]
model = "m"
[pipelines.p.pre]
path = "pre.wasm"
[pipelines.p.post]
path = "post.wasm"
`
	path := filepath.Join(dir, "edgehost.toml")
	c, err := config.Parse(path, []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Pipelines["p"].Sequences; s.Max != 64 || s.IdleTimeout.Duration != 30*time.Second {
		t.Errorf("defaults: %+v", s)
	}
	c, err = config.Parse(path, []byte(base+"[pipelines.p.sequences]\nmax = 200\nidle_timeout = \"5s\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Pipelines["p"].Sequences; s.Max != 200 || s.IdleTimeout.Duration != 5*time.Second {
		t.Errorf("set: %+v", s)
	}
	for _, bad := range []struct{ toml, key, msg string }{
		{"max = -1", "pipelines.p.sequences.max", "between 1 and"},
		{"max = 1000000", "pipelines.p.sequences.max", "between 1 and"},
		{`idle_timeout = "1ms"`, "pipelines.p.sequences.idle_timeout", "below 10ms"},
		{`idle_timeout = "soon"`, "", "invalid duration"},
	} {
		_, err := config.Parse(path, []byte(base+"[pipelines.p.sequences]\n"+bad.toml+"\n"))
		if err == nil || !strings.Contains(err.Error(), bad.msg) || !strings.Contains(err.Error(), bad.key) {
			t.Errorf("%s: %v, want %s: …%s…", bad.toml, err, bad.key, bad.msg)
		}
	}
}

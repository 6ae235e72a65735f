package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// TestPluginCheckModels: `plugin check` of a cascade plugin (people-c, whose init describes
// the models it runs) passes with --model NAME=PATH and, without, fails naming the grant.
func TestPluginCheckModels(t *testing.T) {
	root := repoRoot(t)
	plug := filepath.Join(root, "plugins/examples/people-c/people-c.wasm")
	models := filepath.Join(root, ".deps/models")
	var out, errb bytes.Buffer
	if code := Main([]string{"plugin", "check", "--model", "pose=" + filepath.Join(models, "pose_landmark_full.tflite"),
		"--model", "mobilenet=" + filepath.Join(models, "mobilenet_quant_v1_224.tflite"), plug}, &out, &errb); code != exitOK ||
		!strings.Contains(out.String(), "ok: people-c") {
		t.Fatalf("exit %d: %s%s", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := Main([]string{"plugin", "check", plug}, &out, &errb); code == exitOK || !strings.Contains(errb.String(), `model call "pose": the model is not granted`) {
		t.Fatalf("without --model: exit %d: %s%s", code, out.String(), errb.String())
	}
}

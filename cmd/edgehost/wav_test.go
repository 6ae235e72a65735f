package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeWAV writes 16-bit mono PCM samples as a WAV file at rate Hz.
func writeWAV(t *testing.T, path string, rate int, samples []int16) {
	t.Helper()
	le := binary.LittleEndian
	b := []byte("RIFF\x00\x00\x00\x00WAVEfmt ")
	b = le.AppendUint32(b, 16)
	b = le.AppendUint16(b, 1)
	b = le.AppendUint16(b, 1)
	b = le.AppendUint32(b, uint32(rate))
	b = le.AppendUint32(b, uint32(rate*2))
	b = le.AppendUint16(b, 2)
	b = le.AppendUint16(b, 16)
	b = append(b, "data"...)
	b = le.AppendUint32(b, uint32(2*len(samples)))
	for _, s := range samples {
		b = le.AppendUint16(b, uint16(s))
	}
	le.PutUint32(b[4:], uint32(len(b)-8))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRunWAV: `edgehost run -p wakeword FILE.wav` streams the file in 10 ms chunks as one
// sequence: quiet noise gives no detection; a clip of `make wakeword-ref` (when made) gives
// the detections pymicro-wakeword reports, at the same chunks; a WAV at another rate is
// refused with what to do.
func TestRunWAV(t *testing.T) {
	dir := t.TempDir()
	noise := make([]int16, 16000)
	r := uint32(7)
	for i := range noise {
		r ^= r << 13
		r ^= r >> 17
		r ^= r << 5
		noise[i] = int16(r%201) - 100
	}
	quiet := filepath.Join(dir, "quiet.wav")
	writeWAV(t, quiet, 16000, noise)
	code, stdout, stderr := edgehost(t, "--config", shippedConfig, "run", "-p", "wakeword", "--stats", quiet)
	if code != exitOK || stdout != "" || !strings.Contains(stderr, "100 chunks of 10 ms") {
		t.Fatalf("quiet noise: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	other := filepath.Join(dir, "8k.wav")
	writeWAV(t, other, 8000, noise)
	if code, _, stderr := edgehost(t, "--config", shippedConfig, "run", "-p", "wakeword", other); code == exitOK || !strings.Contains(stderr, "16 kHz mono") {
		t.Fatalf("8 kHz: exit %d, stderr %q", code, stderr)
	}
	clip := filepath.Join(repoRoot(t), ".deps/wakeword-ref/nabu-en-us-120.wav")
	ref, err := os.Open(strings.TrimSuffix(clip, ".wav") + ".ref.jsonl")
	if err != nil {
		t.Skip("no reference clip: run `make wakeword-ref`")
	}
	defer ref.Close()
	var want []string
	for s := bufio.NewScanner(ref); s.Scan(); {
		var c struct {
			Chunk    int
			Detected bool
		}
		json.Unmarshal(s.Bytes(), &c)
		if c.Detected {
			want = append(want, fmt.Sprintf("%d %.2f", c.Chunk, float64(c.Chunk)*0.01))
		}
	}
	code, stdout, stderr = edgehost(t, "--config", shippedConfig, "run", "-p", "wakeword", clip)
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var d struct {
			Chunk    int
			Time     float64
			WakeWord string `json:"wake_word"`
		}
		if err := json.Unmarshal([]byte(line), &d); err != nil || d.WakeWord != "Okay Nabu" {
			t.Fatalf("line %q: %v", line, err)
		}
		got = append(got, fmt.Sprintf("%d %.2f", d.Chunk, d.Time))
	}
	if code != exitOK || len(want) == 0 || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("exit %d (%s): detections %v, reference %v", code, stderr, got, want)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/edgehost/edgehost/host/pipeline"
)

// wavPCM returns the samples of a RIFF/WAVE file of 16-bit PCM, with its channel count
// and sample rate; ok is false when b is not a RIFF/WAVE file at all.
func wavPCM(b []byte) (pcm []byte, channels, rate int, ok bool, err error) {
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, 0, 0, false, nil
	}
	le := binary.LittleEndian
	var format, bits int
	for pos := 12; pos+8 <= len(b); {
		id, n := string(b[pos:pos+4]), int(le.Uint32(b[pos+4:]))
		body := b[pos+8:]
		if n > len(body) {
			n = len(body) // a data chunk cut short (or of unknown length, as a stream writes it)
		}
		switch id {
		case "fmt ":
			if n < 16 {
				return nil, 0, 0, true, errors.New("WAV: fmt chunk too short")
			}
			format, channels, rate, bits = int(le.Uint16(body)), int(le.Uint16(body[2:])), int(le.Uint32(body[4:])), int(le.Uint16(body[14:]))
			if format == 0xfffe && n >= 26 { // WAVE_FORMAT_EXTENSIBLE: the sub-format's first two bytes
				format = int(le.Uint16(body[24:]))
			}
		case "data":
			if format == 0 {
				return nil, 0, 0, true, errors.New("WAV: data before fmt")
			}
			if format != 1 || bits != 16 {
				return nil, 0, 0, true, fmt.Errorf("WAV: format %d with %d bits per sample; want 16-bit PCM (format 1)", format, bits)
			}
			return body[:n&^1], channels, rate, true, nil
		}
		pos += 8 + n + n&1
	}
	return nil, 0, 0, true, errors.New("WAV: no data chunk")
}

// ChunkBytes is one 10 ms chunk of 16 kHz mono 16-bit audio.
const ChunkBytes = 320

// streamWAV runs 16 kHz mono 16-bit PCM through a pipeline as one sequence of 10 ms
// chunks (a trailing partial chunk is dropped, as pymicro-wakeword's feature buffer keeps
// it), handing each non-empty result to fn.
func streamWAV(ctx context.Context, p *pipeline.Pipeline, pcm []byte, fn func(chunk int, res []byte) error) (int, error) {
	n := len(pcm) / ChunkBytes
	if n == 0 {
		return 0, errors.New("the WAV file holds less than one 10 ms chunk")
	}
	for i := range n {
		c := pcm[i*ChunkBytes : (i+1)*ChunkBytes]
		_, err := p.Do(ctx, pipeline.Request{Body: bytes.NewReader(c), Size: ChunkBytes,
			Sequence: pipeline.Sequence{ID: "edgehost-run", Start: i == 0, End: i == n-1}}, func(res []byte, _ string) error {
			if len(res) == 0 {
				return nil
			}
			return fn(i, res)
		})
		if err != nil {
			return i, fmt.Errorf("chunk %d (%.2f s): %w", i, float64(i)*0.01, err)
		}
	}
	return n, nil
}

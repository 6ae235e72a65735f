package server_test

import (
	"testing"

	"github.com/edgehost/edgehost/host/server"
)

// FuzzDecodeInferRequest: the KServe v2 decoder never panics, whatever the body and the
// binary header length.
func FuzzDecodeInferRequest(f *testing.F) {
	f.Add([]byte(`{"inputs":[{"name":"input","shape":[3],"datatype":"UINT8","data":[1,2,3]}]}`), -1)
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":7}}]}`+"\x03\x00\x00\x00abc"), 86)
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1.5,2],[3,4]]}]}`), -1)
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","data":["hi"]}]}`), -1)
	f.Fuzz(func(t *testing.T, body []byte, hl int) {
		if hl < -1 {
			hl = -1
		}
		_, _ = server.DecodeInferRequest(body, hl)
	})
}

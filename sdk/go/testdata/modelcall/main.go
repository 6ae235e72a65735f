// modelcall: a test plugin (kind both, shared instance) for the Go SDK's model calls: pre
// writes a pattern into the pipeline model's input; post runs the granted model itself on
// the same pattern in its own buffers (edgehost.OpenModel, Model.Run) and answers whether
// its output equals the pipeline's. host/pipeline's TestSDKModelCalls runs it.
package main

import (
	"bytes"

	"github.com/edgehost/edgehost/sdk/go/edgehost"
)

var model *edgehost.Model

func pattern(b []byte) {
	for i := range b {
		b[i] = byte(i * 7 % 251)
	}
}

func init() {
	edgehost.Register(edgehost.Plugin{
		Init: func([]byte) (err error) {
			model, err = edgehost.OpenModel("mobilenet")
			return err
		},
		Pre: func(req *edgehost.PreRequest) error {
			pattern(req.Tensors[0].Data)
			return nil
		},
		Post: func(req *edgehost.PostRequest) error {
			pattern(model.Inputs[0].Data)
			if err := model.Run(); err != nil {
				return err
			}
			eq := bytes.Equal(model.Outputs[0].Data, req.Tensors[0].Data)
			req.SetResult([]byte(`{"lang":"go","equal":` + map[bool]string{true: "true", false: "false"}[eq] + `}`))
			return nil
		},
	})
}

func main() {}

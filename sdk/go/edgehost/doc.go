// Package edgehost is the Go SDK for edgehost plugins (abi/ABI.md). A plugin is a package
// main built with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared that calls Register
// from an init function. The SDK implements every ABI export, hands the plugin typed views of
// tensors that alias guest memory (no copies), and turns returned errors into ABI statuses.
// It imports abi only.
//
// A complete pre plugin:
//
//	package main
//
//	import "github.com/edgehost/edgehost/sdk/go/edgehost"
//
//	func init() {
//		edgehost.Register(edgehost.Plugin{
//			Pre: func(req *edgehost.PreRequest) error {
//				in := req.Tensors[0]
//				if len(req.Input) != in.Len() {
//					return edgehost.BadInput("want %d bytes, got %d", in.Len(), len(req.Input))
//				}
//				for i, b := range req.Input {
//					in.SetFloat(i, float32(b)/255) // quantises for uint8/int8 tensors
//				}
//				return nil
//			},
//		})
//	}
//
//	func main() {}
//
// Model calls (ABI 1.3, abi/ABI.md §5.9): a plugin granted a model in config.toml
// (grants = { models = ["mobilenet"] }) runs it on buffers in its own memory: OpenModel (in
// Init), fill Model.Inputs[i].Data, Model.Run, read Model.Outputs. See
// sdk/go/testdata/modelcall.
package edgehost

// Package inference is the Go code generated from KServe's published v2 gRPC protocol,
// grpc_predict_v2.proto (messages and the GRPCInferenceService client and server
// interfaces). Do not edit the .pb.go files: change the .proto and run `make proto`
// (scripts/proto.sh, with protoc from PyPI grpcio-tools and the Go plugins pinned there).
package inference

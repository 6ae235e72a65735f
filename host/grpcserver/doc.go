// Package grpcserver is edgehost's KServe v2 / Open Inference Protocol gRPC front end: the
// GRPCInferenceService of KServe's grpc_predict_v2.proto (package inference, the one Triton's
// clients call) on its own listener (server.grpc_address). It decodes tensors and hands
// them to the same pipeline and bare-model paths, metrics and error table as the HTTP front
// end (host/server). It imports server and the layers below it; nothing imports it but
// cmd/edgehost.
package grpcserver

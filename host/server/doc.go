// Package server is edgehost's HTTP front end: the raw pipeline endpoint, the KServe v2 /
// Open Inference Protocol endpoints (JSON and binary tensor data), /metrics, /status and
// health checks, with one table mapping errors to HTTP statuses. It imports engine and the
// layers below it; nothing imports it but cmd/edgehost.
package server

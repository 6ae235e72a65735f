// Package tflite runs native TensorFlow Lite inference: models, interpreters, a pool of
// interpreters for concurrent use, the XNNPACK and external (vendor) delegates, and custom
// tensor allocation for the zero-copy plugin ABI, and a second backend on LiteRT's
// CompiledModel API (CPU, GPU, NPU; libLiteRt.so loaded at run time) that falls back to the
// classic one. It is the only package of the host that uses cgo. It imports go-tflite, abi and internal/safefile only, never other host packages.
package tflite

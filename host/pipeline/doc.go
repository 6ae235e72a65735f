// Package pipeline runs one request through pre plugin → native inference → post plugin
// on pooled workers, binding the model's tensors in guest memory (zero copy) or copying each
// tensor once when the TFLite library cannot. It imports host/plugin, host/tflite and abi,
// never the server or config packages.
package pipeline

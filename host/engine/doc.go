// Package engine assembles the running host from a config: the plugin runtime, the models
// with their bare-inference pools, and the pipelines. It owns their lifetimes and applies
// reloads (plugins, models, config) without breaking what serves. It imports config,
// pipeline, plugin and tflite; never the server.
package engine

// Package stream feeds a pipeline from a camera: multipart MJPEG over HTTP, read and bounded
// here, or rtsp:// and video files decoded by an ffmpeg child process into raw frames (ABI
// 1.3) that never parses anything inside edgehost. Each stream keeps a one-slot mailbox
// (the newest frame replaces one not yet taken: dropped and counted, never queued) and
// inflight runner goroutines that run what the slot holds through pipeline.Do; results go out
// in frame order (a frame overtaken by a newer one is dropped as late) to a Hub that the
// SSE endpoint (host/server) and the MQTT sink (host/mqtt) subscribe to. The engine owns the
// streams (starts, restarts on a config change, stops). Imports config, pipeline, plugin
// and abi; never engine, server or mqtt.
package stream

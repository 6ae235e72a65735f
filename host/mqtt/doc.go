// Package mqtt is a pipeline's MQTT 5 source and sink: it subscribes to the pipeline's
// topic (QoS 1), runs each message's payload through the pipeline like host/server does
// for an HTTP body, publishes the result (with the request's correlation data, to its
// response topic when it names one) or an error, and acknowledges the message only once
// that is published. It reconnects with backoff (eclipse/paho.golang's autopaho) and keeps
// a persistent session, so the broker redelivers what was not acknowledged. Imports
// host/engine, host/config and host/server (the error table); nothing imports it but the CLI.
package mqtt

// Package mqtt is a pipeline's MQTT 5 source and sink: it subscribes to the pipeline's
// topic (QoS 1), runs each message's payload through the pipeline like host/server does
// for an HTTP body, publishes the result (with the request's correlation data, to its
// response topic when response_topic_prefix allows it) or an error, and acknowledges the
// message once that is published, or once publishing it has failed for good (a poison
// message is acknowledged with an error, never retried for ever). It reconnects with
// backoff (eclipse/paho.golang's autopaho) and keeps a persistent session, so the broker
// redelivers what was not acknowledged. Imports host/engine, host/config and host/server
// (the error table); nothing imports it but the CLI.
package mqtt

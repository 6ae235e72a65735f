package server

// Classify maps an error of a pipeline run to its HTTP status and error class through the
// one error table (classify), for the transports beside HTTP (MQTT) that report the same
// classes.
func Classify(err error) (status int, class string) { return classify(err) }

package tflite

// CancelLiteRTRuns lets the external tests make a real LiteRT run fail.
func CancelLiteRTRuns(i *Interpreter) error { return i.cancelLiteRTRuns() }

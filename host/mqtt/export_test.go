package mqtt

import "time"

// SetStartWait shortens how long Start waits for the connection attempts; the returned
// function restores it.
func SetStartWait(d time.Duration) (restore func()) {
	old := startWait
	startWait = d
	return func() { startWait = old }
}

//go:build race

package engine_test

// raceEnabled: the race detector slows reloads 5-10×; timing acceptance bounds are not checked.
const raceEnabled = true

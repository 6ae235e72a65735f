package tflite

import (
	"bytes"
	"math"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// What other processes on the machine do decides too: with TFLite 2.17.1's XNNPACK, an
// invoke on 2 threads while another process keeps a core busy was 2.4-11× slower than on
// 1 thread (its thread pool waits at every operator for a thread that gets no core;
// RATIONALE.md, "Adaptive parallelism"). A goroutine, started by the first request that
// could use an idle interpreter, reads /proc/stat and /proc/self/stat every loadWindow: the
// CPU time the machine spent minus this process's is what the others used.

const loadWindow = 250 * time.Millisecond

var machine struct {
	once     sync.Once
	ok       atomic.Bool   // sampling works (Linux, /proc readable)
	others   atomic.Uint64 // math.Float64bits: cores the other processes used, the larger of the last two windows
	cpus     atomic.Int32  // CPUs in /proc/stat
	disabled atomic.Bool   // SetLoadCheck(false)
}

// SetLoadCheck turns the check of other processes' CPU use on (the default) or off, and
// returns the previous setting. Off, IdleInterpreter looks only at this process's requests:
// the routing tests turn it off so that other jobs on a shared machine do not change what
// they check.
func SetLoadCheck(on bool) (was bool) { return !machine.disabled.Swap(!on) }

// OthersBusy is how many cores' worth of CPU time other processes used over the last two
// sampling windows (the larger), and whether it is known (false before the first samples,
// and where /proc is missing).
func OthersBusy() (float64, bool) {
	if !machine.ok.Load() {
		return 0, false
	}
	return math.Float64frombits(machine.others.Load()), true
}

// machineAllows reports whether the other processes leave threads cores free, starting the
// sampler on first use. Unknown load (no /proc, no samples yet) allows.
func machineAllows(threads int) bool {
	if machine.disabled.Load() {
		return true
	}
	machine.once.Do(startSampler)
	others, ok := OthersBusy()
	return !ok || allows(others, int(machine.cpus.Load()), threads)
}

// allows: the other processes' use leaves threads cores free, give or take a quarter core
// (the sampler's own noise, a shell, a logger).
func allows(others float64, cpus, threads int) bool {
	return float64(cpus)-others >= float64(threads)-0.25
}

func startSampler() {
	prev, ok := sampleCPU()
	if !ok {
		return
	}
	go func() {
		last := 0.0
		for {
			time.Sleep(loadWindow)
			cur, ok := sampleCPU()
			if !ok {
				machine.ok.Store(false)
				return
			}
			o := cur.othersSince(prev)
			machine.others.Store(math.Float64bits(max(o, last)))
			machine.cpus.Store(int32(cur.cpus))
			machine.ok.Store(true)
			prev, last = cur, o
		}
	}()
}

// cpuSample is the machine's CPU time (all CPUs, in clock ticks), how much of it was busy,
// and this process's own busy time.
type cpuSample struct {
	total, busy, self uint64
	cpus              int
}

// othersSince is the cores' worth of CPU time others used between s0 and s.
func (s cpuSample) othersSince(s0 cpuSample) float64 {
	dt := float64(s.total - s0.total)
	if dt <= 0 || s.cpus == 0 {
		return 0
	}
	others := float64(s.busy-s0.busy) - float64(s.self-s0.self)
	return max(0, others/dt*float64(s.cpus))
}

func sampleCPU() (cpuSample, bool) {
	st, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuSample{}, false
	}
	self, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return cpuSample{}, false
	}
	return parseCPU(st, self)
}

// parseCPU reads the "cpu" line and counts the "cpuN" lines of /proc/stat, and utime +
// stime of /proc/self/stat (fields 14 and 15, after the command in parentheses).
func parseCPU(stat, self []byte) (cpuSample, bool) {
	var s cpuSample
	found := false
	for _, line := range bytes.Split(stat, []byte("\n")) {
		f := bytes.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch {
		case string(f[0]) == "cpu" && len(f) >= 8:
			// user nice system idle iowait irq softirq [steal guest guest_nice]; guest
			// time is already counted in user.
			for i, v := range f[1:min(len(f), 9)] {
				n, err := strconv.ParseUint(string(v), 10, 64)
				if err != nil {
					return s, false
				}
				s.total += n
				if i != 3 && i != 4 { // idle, iowait
					s.busy += n
				}
			}
			found = true
		case len(f[0]) > 3 && string(f[0][:3]) == "cpu":
			s.cpus++
		}
	}
	end := bytes.LastIndexByte(self, ')')
	if !found || end < 0 {
		return s, false
	}
	f := bytes.Fields(self[end+1:])
	if len(f) < 13 { // state is field 3; utime and stime are 14 and 15
		return s, false
	}
	for _, v := range f[11:13] {
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return s, false
		}
		s.self += n
	}
	return s, true
}

package imaging

import "syscall"

// threadCPU is the calling thread's CPU time in nanoseconds (benchmarks lock the thread): on
// a shared machine it varies far less than wall time.
func threadCPU() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

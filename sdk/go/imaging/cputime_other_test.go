//go:build !linux

package imaging

func threadCPU() int64 { return 0 }

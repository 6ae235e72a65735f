package stream

import "syscall"

// procAttr puts ffmpeg in its own process group (stopped as a group) and has the kernel
// kill it if edgehost dies first, so no decoder outlives the host.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

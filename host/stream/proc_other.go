//go:build !linux

package stream

import "syscall"

// procAttr puts ffmpeg in its own process group, stopped as a group.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

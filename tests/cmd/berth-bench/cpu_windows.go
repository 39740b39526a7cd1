//go:build windows

package main

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user and kernel) this process has used
// so far, and whether the platform tells.
func processCPU() (time.Duration, bool) {
	h, err := syscall.GetCurrentProcess()
	if err != nil {
		return 0, false
	}
	var created, exited, kernel, user syscall.Filetime
	if err := syscall.GetProcessTimes(h, &created, &exited, &kernel, &user); err != nil {
		return 0, false
	}
	// A Filetime counts 100 ns intervals; Nanoseconds reads it as a time
	// since 1601, which a duration does not want.
	ticks := func(f syscall.Filetime) time.Duration {
		return time.Duration(int64(f.HighDateTime)<<32|int64(f.LowDateTime)) * 100
	}
	return ticks(kernel) + ticks(user), true
}

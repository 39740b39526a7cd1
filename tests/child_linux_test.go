package tests

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes the kernel kill cmd's process when the test process
// ends, so that a test killed by its timeout leaves no berthd behind.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

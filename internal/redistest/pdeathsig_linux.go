package redistest

import "syscall"

// setParentDeathSignal asks the kernel to SIGKILL the child if the test
// binary dies without running cleanups (e.g. on a go test -timeout panic).
func setParentDeathSignal(attr *syscall.SysProcAttr) {
	attr.Pdeathsig = syscall.SIGKILL
}

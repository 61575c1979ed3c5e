package fault

import "syscall"

// setParentDeathSignal asks the kernel to SIGKILL a worker process if the
// test binary dies without running its cleanups (a go test -timeout panic,
// say).
func setParentDeathSignal(attr *syscall.SysProcAttr) {
	attr.Pdeathsig = syscall.SIGKILL
}

//go:build !linux

package fault

import "syscall"

// setParentDeathSignal does nothing where the kernel has no parent death
// signal; cleanups still kill the worker processes.
func setParentDeathSignal(*syscall.SysProcAttr) {}

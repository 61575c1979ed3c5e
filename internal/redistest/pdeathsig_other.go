//go:build !linux

package redistest

import "syscall"

// setParentDeathSignal does nothing where the kernel has no parent death
// signal; cleanups still kill the servers.
func setParentDeathSignal(*syscall.SysProcAttr) {}

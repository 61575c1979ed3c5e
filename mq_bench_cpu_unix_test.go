//go:build unix

package mq

import (
	"syscall"
	"testing"
)

// processCPU answers the CPU seconds this process used so far (user and
// system): the client's side of a benchmark's measure.
func processCPU(b *testing.B) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

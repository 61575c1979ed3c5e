//go:build !unix

package mq

import "testing"

// processCPU answers 0: this system's process CPU time is not read.
func processCPU(*testing.B) float64 { return 0 }

// Package lua holds the queue's Redis scripts, one file per script or
// shared part, as Carmine names them where Carmine has them (enqueue,
// dequeue, msg-status). internal/protocol composes them into the scripts it
// runs; see docs/protocol.md for what each one does.
package lua

import "embed"

// FS holds every .lua file of this directory, by its file name.
//
//go:embed *.lua
var FS embed.FS

package mq

import (
	"embed"
	"io/fs"

	"github.com/gocarmine/mq/internal/protocol"
)

// luaFiles holds the queue's Redis scripts: the files of lua/, one per
// script or shared part, named as Carmine names its own where it has them
// (enqueue, dequeue, msg-status). internal/protocol composes them into the
// scripts it runs; docs/protocol.md says what each one does. They are
// embedded here, in the package at the repository's root, because an
// embed pattern cannot reach a parent directory: this keeps the files in
// lua/ and no package of them in the public API.
//
//go:embed lua/*.lua
var luaFiles embed.FS

func init() {
	files, err := fs.Sub(luaFiles, "lua")
	if err != nil {
		panic("mq: the embedded lua directory: " + err.Error())
	}
	protocol.Load(files)
}

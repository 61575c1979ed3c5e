package redistest

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFreePortNeverRepeats(t *testing.T) {
	seen := map[int]bool{}
	for range 500 {
		port, err := freePort()
		require.NoError(t, err)
		require.False(t, seen[port], "port %d handed out twice", port)
		require.LessOrEqual(t, port, maxPort, "a cluster node's bus port must fit")
		seen[port] = true
	}
}

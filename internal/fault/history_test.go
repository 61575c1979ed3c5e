package fault

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHistoryRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, err := OpenHistory(HistoryPath(dir, "a"))
	require.NoError(t, err)
	b, err := OpenHistory(HistoryPath(dir, "b"))
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 50 {
				h := a
				if i%2 == 1 {
					h = b
				}
				require.NoError(t, h.Write(Event{Kind: HandleStart, ID: fmt.Sprint(i, "-", j), Handling: int64(j + 1)}))
			}
		})
	}
	wg.Wait()
	require.NoError(t, a.Close())
	require.NoError(t, b.Close())
	require.ErrorIs(t, a.Write(Event{Kind: HandleEnd}), os.ErrClosed)

	evs, err := ReadHistories(dir)
	require.NoError(t, err)
	require.Len(t, evs, 200)
	seen := map[string]bool{}
	for i, e := range evs {
		require.Equal(t, os.Getpid(), e.PID)
		require.False(t, e.Time.IsZero())
		if i > 0 {
			require.False(t, e.Time.Before(evs[i-1].Time), "sorted by time")
		}
		seen[e.ID] = true
	}
	require.Len(t, seen, 200)
}

func TestHistorySequence(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h, err := OpenHistory(HistoryPath(dir, "one"))
	require.NoError(t, err)
	for range 10 {
		require.NoError(t, h.Write(Event{Kind: ScriptFlush}))
	}
	require.NoError(t, h.Close())
	evs, err := ReadHistories(dir)
	require.NoError(t, err)
	for i, e := range evs {
		require.Equal(t, int64(i+1), e.Seq)
	}
}

// TestHistoryTornLastLine: a process killed in the middle of a write can
// leave part of a line at the end; it is skipped. A bad line elsewhere is
// an error.
func TestHistoryTornLastLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := HistoryPath(dir, "torn")
	h, err := OpenHistory(path)
	require.NoError(t, err)
	require.NoError(t, h.Write(Event{Kind: EnqueueAttempt, ID: "x"}))
	require.NoError(t, h.Close())
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"t":"2024-01-01T00:00:00Z","pid":1,"kind":"enq`)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	evs, err := ReadHistories(dir)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Equal(t, "x", evs[0].ID)

	bad := filepath.Join(t.TempDir(), "bad"+historyExt)
	require.NoError(t, os.WriteFile(bad, []byte("{oops\n{\"kind\":\"script-flush\"}\n"), 0o644))
	_, err = ReadHistories(filepath.Dir(bad))
	require.Error(t, err)
}

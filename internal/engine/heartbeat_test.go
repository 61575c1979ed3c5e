package engine

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
	"github.com/stretchr/testify/assert"
)

// beatStore answers beats with the errors of fails, in turn, then nil,
// and tells of each.
type beatStore struct {
	mu    sync.Mutex
	fails []error
	beats chan []byte
	gone  chan string
}

func (s *beatStore) Beat(_ context.Context, _ string, _ time.Duration, info []byte) error {
	s.mu.Lock()
	var err error
	if len(s.fails) > 0 {
		err, s.fails = s.fails[0], s.fails[1:]
	}
	s.mu.Unlock()
	s.beats <- info
	return err
}

func (s *beatStore) Gone(_ context.Context, id string) error { s.gone <- id; return nil }
func (s *beatStore) Poll(context.Context, protocol.PollArgs) (protocol.PollReply, error) {
	return protocol.PollReply{}, nil
}
func (s *beatStore) Renew(context.Context, []protocol.Renewal) ([]int64, error) { return nil, nil }

// TestHeartbeatReportsStreaksAndStops: the heartbeat beats at once and
// then every interval with the info of the moment, reports a failing
// streak once and its end once, reports nothing once stopped, and Leave
// removes the entry.
func TestHeartbeatReportsStreaksAndStops(t *testing.T) {
	s := &beatStore{fails: []error{errors.New("away"), errors.New("away")}, beats: make(chan []byte, 100), gone: make(chan string, 1)}
	var mu sync.Mutex
	var reports []string
	report := func(r string) { mu.Lock(); reports = append(reports, r); mu.Unlock() }
	n := 0
	h := StartHeartbeat(context.Background(), s, HeartbeatConfig{
		ID: "w", Every: time.Millisecond, TTL: time.Minute,
		Info:      func() []byte { n++; return []byte{byte(n)} },
		Failed:    func(error) { report("failed") },
		Recovered: func() { report("recovered") },
	})
	for i := 1; i <= 4; i++ {
		assert.Equal(t, []byte{byte(i)}, receive(t, s.beats))
	}
	h.Stop()
	mu.Lock()
	assert.Equal(t, []string{"failed", "recovered"}, reports)
	mu.Unlock()
	receive(t, h.Done())
	h.Leave(context.Background())
	assert.Equal(t, "w", receive(t, s.gone))
	mu.Lock()
	assert.Len(t, reports, 2, "nothing reported after Stop")
	mu.Unlock()
}

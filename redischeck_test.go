package mq

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/gocarmine/mq/internal/redistest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCheckRedisEviction: checkRedis warns when Redis may evict keys, and
// only then.
func TestCheckRedisEviction(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want []string // each warning holds these, "" for no warning
	}{
		{"allkeys-lru", []string{"--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru"},
			[]string{"Redis may evict any key", "(100 MiB, maxmemory-policy allkeys-lru)", "noeviction"}},
		{"volatile-lru", []string{"--maxmemory", "100mb", "--maxmemory-policy", "volatile-lru"},
			[]string{"Redis may evict keys that have a TTL", "(100 MiB, maxmemory-policy volatile-lru)", "noeviction"}},
		{"noeviction", []string{"--maxmemory", "100mb", "--maxmemory-policy", "noeviction"}, nil},
		{"no maxmemory", []string{"--maxmemory", "0", "--maxmemory-policy", "allkeys-lru"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := queuetest.RealServer(t, tc.args...)
			log := &logRecorder{}
			c := newClient(t, s, &Config{Logger: log.logger(t)})
			warnings := c.checkRedisWithin(context.Background(), eventTimeout)
			if tc.want == nil {
				assert.Empty(t, warnings)
			} else {
				require.Len(t, warnings, 1)
				for _, part := range tc.want {
					assert.Contains(t, warnings[0], part)
				}
				t.Log(warnings[0])
			}
			assert.Empty(t, log.messages(slog.LevelDebug), "the settings were read")
		})
	}
}

// TestCheckRedisCannotTell: a refused CONFIG, a Redis without CONFIG and a
// Redis that never answers give no warning and no error, and one Debug log.
func TestCheckRedisCannotTell(t *testing.T) {
	const cannotTell = "mq: cannot tell whether Redis may evict queue keys"
	t.Run("acl", func(t *testing.T) {
		t.Parallel()
		s := queuetest.RealServer(t, "--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru")
		ctx := context.Background()
		require.NoError(t, s.RDB.Do(ctx, "acl", "setuser", "noconfig", "on", ">secret", "~*", "+@all", "-config").Err())
		rdb := redis.NewClient(&redis.Options{Addr: s.Real.Addr, Username: "noconfig", Password: "secret"})
		t.Cleanup(func() { _ = rdb.Close() })
		require.ErrorContains(t, rdb.ConfigGet(ctx, "maxmemory").Err(), "NOPERM", "the user may not read the config")
		log := &logRecorder{}
		c, err := New(rdb, &Config{Logger: log.logger(t)})
		require.NoError(t, err)
		assert.Empty(t, c.checkRedis(ctx))
		assert.Equal(t, []string{cannotTell}, log.messages(slog.LevelDebug))
	})
	t.Run("miniredis", func(t *testing.T) {
		t.Parallel()
		s := queuetest.MiniServer(t) // has no CONFIG command
		log := &logRecorder{}
		c := newClient(t, s, &Config{Logger: log.logger(t)})
		assert.Empty(t, c.checkRedis(context.Background()))
		assert.Equal(t, []string{cannotTell}, log.messages(slog.LevelDebug))
	})
	t.Run("silent", func(t *testing.T) {
		t.Parallel()
		// A server that accepts connections and never answers, and a
		// client that would wait for it forever: checkRedis returns anyway.
		addr := silentServer(t)
		rdb := redis.NewClient(&redis.Options{Addr: addr, ReadTimeout: -1, MaxRetries: -1})
		t.Cleanup(func() { _ = rdb.Close() })
		log := &logRecorder{}
		c, err := New(rdb, &Config{Logger: log.logger(t)})
		require.NoError(t, err)
		assert.Empty(t, c.checkRedis(context.Background()))
		assert.Equal(t, []string{cannotTell}, log.messages(slog.LevelDebug))
	})
}

// TestCheckRedisCluster: on a cluster, every master is read, and a warning
// names the master it is about.
func TestCheckRedisCluster(t *testing.T) {
	t.Parallel()
	rc := redistest.SharedCluster(t)
	ctx := context.Background()
	masters := rc.Masters(t)
	require.Len(t, masters, 3)
	evicting := masters[1].Addr
	admin := redis.NewClient(&redis.Options{Addr: evicting})
	t.Cleanup(func() { _ = admin.Close() })
	// The cluster is shared: put back the defaults before it is given back.
	t.Cleanup(func() {
		assert.NoError(t, admin.ConfigSet(ctx, "maxmemory", "0").Err())
		assert.NoError(t, admin.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err())
	})
	require.NoError(t, admin.ConfigSet(ctx, "maxmemory", "1gb").Err())
	require.NoError(t, admin.ConfigSet(ctx, "maxmemory-policy", "allkeys-lfu").Err())

	log := &logRecorder{}
	c, err := New(rc.Client(t), &Config{Cluster: true, Logger: log.logger(t)})
	require.NoError(t, err)
	warnings := c.checkRedisWithin(ctx, eventTimeout)
	require.Len(t, warnings, 1)
	assert.Contains(t, warnings[0], "Redis master "+evicting+" may evict any key, queue keys included, once it reaches maxmemory (1 GiB, maxmemory-policy allkeys-lfu)")
	assert.Empty(t, log.messages(slog.LevelDebug), "every master was read")
}

// silentServer listens on a free loopback port and accepts connections
// that it never answers; they are closed when the test ends.
func silentServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, conn := range conns {
			_ = conn.Close()
		}
	})
	return l.Addr().String()
}

// logRecorder keeps the messages logged through its logger, by level, and
// passes every record on to the test log.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (r *logRecorder) logger(t *testing.T) *slog.Logger {
	return slog.New(&recordingHandler{r: r, next: testLogger(t).Handler()})
}

// messages answers the messages logged at level, in order.
func (r *logRecorder) messages(level slog.Level) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range r.records {
		if rec.Level == level {
			out = append(out, rec.Message)
		}
	}
	return out
}

// errors answers the "error" attribute of every record that has one.
func (r *logRecorder) errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range r.records {
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == "error" {
				out = append(out, strings.TrimSpace(a.Value.String()))
			}
			return true
		})
	}
	return out
}

type recordingHandler struct {
	r    *logRecorder
	next slog.Handler
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *recordingHandler) Handle(ctx context.Context, rec slog.Record) error {
	h.r.mu.Lock()
	h.r.records = append(h.r.records, rec.Clone())
	h.r.mu.Unlock()
	return h.next.Handle(ctx, rec)
}

func (h *recordingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &recordingHandler{r: h.r, next: h.next.WithAttrs(as)}
}

func (h *recordingHandler) WithGroup(name string) slog.Handler {
	return &recordingHandler{r: h.r, next: h.next.WithGroup(name)}
}

// TestWorkerWarnsOfEviction: a worker's start logs checkRedis's warnings.
func TestWorkerWarnsOfEviction(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t, "--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru")
	logs := &lockedBuffer{}
	c := newClient(t, s, &Config{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	w, calls := startWorker(t, c, queuetest.QueueName(t), WorkerConfig{}, nil)
	enqueue(t, c, w.Queue(), "x", nil)
	next(t, calls)
	require.NoError(t, w.Stop(context.Background()))
	assert.Contains(t, logs.String(), "level=WARN msg=\"mq: Redis may evict")
	assert.Contains(t, logs.String(), "may evict any key")
}

// lockedBuffer is a bytes.Buffer safe for concurrent use, for logs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

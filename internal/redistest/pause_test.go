package redistest_test

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/gocarmine/mq/internal/redistest"
)

func TestPauseAndResume(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	c := s.Client(t)
	require.NoError(t, c.Set(pingCtx(t), "k", "v", 0).Err())

	// A connection opened before the pause, with a request sent during it.
	conn, err := net.Dial("tcp", s.Addr)
	require.NoError(t, err)
	defer conn.Close()

	s.Pause(t)
	s.Pause(t) // pausing a paused server is a no-op
	quick := redis.NewClient(&redis.Options{Addr: s.Addr, ReadTimeout: 200 * time.Millisecond,
		DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer quick.Close()
	require.Error(t, quick.Ping(pingCtx(t)).Err(), "a paused server answers nothing")
	_, err = conn.Write([]byte("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"))
	require.NoError(t, err, "the kernel takes what is sent to a paused server")

	s.Resume(t)
	s.Resume(t) // resuming a running server is a no-op
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	require.NoError(t, err, "the request sent during the pause is answered after it")
	require.Equal(t, "$1\r\n", line)
	v, err := c.Get(pingCtx(t), "k").Result()
	require.NoError(t, err)
	require.Equal(t, "v", v, "a pause keeps the data")
}

func TestPauseThenKillAndRestart(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	s.Pause(t)
	s.Kill(t) // SIGKILL ends a stopped process too
	s.Restart(t)
	require.NoError(t, s.Client(t).Ping(pingCtx(t)).Err(), "a restart after a paused kill runs")
}

func TestPausedServerEndsWithItsTest(t *testing.T) {
	t.Parallel()
	var addr string
	t.Run("pause", func(t *testing.T) {
		s := redistest.Start(t)
		addr = s.Addr
		s.Pause(t) // left paused: the cleanup resumes and kills it
	})
	_, err := net.DialTimeout("tcp", addr, time.Second)
	require.Error(t, err, "the paused server is gone once its test ended")
}

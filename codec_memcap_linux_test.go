//go:build linux

package mq

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// capHeadroom is how much address space a capped child may map beyond
// what it had when it lowered its limit: plenty for the library and a
// Redis client, far below what the hostile payloads ask for.
const capHeadroom = 512 << 20

// TestDecodeUnderMemoryCap decodes the hostile payloads of issue 9 in a
// child process whose address space is capped, so that an allocation
// sized by a declared length kills the child instead of this process (or
// the machine). The parent stores the payloads in a queue on a real
// redis-server, written straight into its messages hash as another service
// would; the child decodes them through MsgpackCodec, a worker's
// Message.Value and QueueContent, and must come through.
func TestDecodeUnderMemoryCap(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	ctx := context.Background()
	for _, p := range queuedHostile() {
		enqueue(t, c, q, Raw("placeholder"), &EnqueueOptions{MessageID: p.name})
		require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.Messages), p.name, p.data).Err())
	}

	out, err := runCappedChild(t, "library", s.Real.Addr, q)
	require.NoError(t, err, "the capped child failed:\n%s", out)
	assert.Contains(t, out, "capped address space")
	for _, p := range append(hostilePayloads(), extPayloads()...) {
		for _, target := range decodeTargets {
			assert.Contains(t, out, fmt.Sprintf("codec came through %s into %s\n", p.name, target.name))
		}
	}
	for _, p := range queuedHostile() {
		assert.Contains(t, out, fmt.Sprintf("content refused %s\n", p.name))
		assert.Contains(t, out, fmt.Sprintf("handler refused %s\n", p.name))
	}
	assert.Contains(t, out, "library survived\n")

	// The cap bites: the same child decoding with msgpack alone, without
	// the check, dies of a bin32 header that declares 1 GiB, while
	// without the cap it is granted that (untouched) gigabyte and lives.
	out, err = runCappedChild(t, "raw-uncapped", "", "")
	require.NoError(t, err, "the uncapped raw child failed:\n%s", out)
	assert.Contains(t, out, "raw decode returned: ")
	out, err = runCappedChild(t, "raw", "", "")
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "the capped raw child should have died:\n%s", out)
	assert.Contains(t, out, "capped address space")
	assert.NotContains(t, out, "raw decode returned")
	// Under -race the runtime reports a refused heap mapping differently.
	died := strings.Contains(out, "fatal error: out of memory") ||
		strings.Contains(out, "fatal error: too many address space collisions for -race mode")
	assert.True(t, died, "the capped raw child should have run out of memory:\n%s", head(out, 12))
}

// head returns the first n lines of s.
func head(s string, n int) string {
	lines := strings.SplitAfterN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "")
}

// runCappedChild runs TestHelperDecodeUnderCap in a new process of this
// test binary, and returns its output.
func runCappedChild(t *testing.T, mode, addr, queue string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperDecodeUnderCap$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "MQ_CAP_MODE="+mode, "MQ_CAP_REDIS="+addr, "MQ_CAP_QUEUE="+queue)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestHelperDecodeUnderCap is the child of TestDecodeUnderMemoryCap. It
// caps its own address space, then decodes the hostile payloads: with the
// library (mode "library"), or one of them with msgpack.Unmarshal alone
// (mode "raw"), which it is not expected to survive. Mode "raw-uncapped"
// is the same decode without the cap.
func TestHelperDecodeUnderCap(t *testing.T) {
	mode := os.Getenv("MQ_CAP_MODE")
	if mode == "" {
		t.Skip("run by TestDecodeUnderMemoryCap")
	}
	if mode != "raw-uncapped" {
		limit := capAddressSpace(t, capHeadroom)
		fmt.Printf("capped address space at %d MiB\n", limit>>20)
	}

	if strings.HasPrefix(mode, "raw") {
		var v any
		err := msgpack.Unmarshal(hexBytes("c6 40 00 00 00"), &v)
		fmt.Printf("raw decode returned: %v\n", err)
		return
	}

	for _, p := range hostilePayloads() {
		for _, target := range decodeTargets {
			err := MsgpackCodec{}.Unmarshal(p.data, target.new())
			require.Error(t, err, p.name)
			require.ErrorIs(t, decode(MsgpackCodec{}, p.data, target.new()), ErrDecode, p.name)
			fmt.Printf("codec came through %s into %s\n", p.name, target.name)
		}
	}
	for _, p := range extPayloads() {
		// Each after a byte, so that a map header read from its payload
		// may take its length from beyond it.
		data := slices.Concat(hexBytes("92"), p.data, hexBytes("00"))
		for _, target := range decodeTargets {
			err := MsgpackCodec{}.Unmarshal(data, target.new())
			if target.name == "maps" {
				require.ErrorContains(t, err, p.reason, p.name)
			}
			fmt.Printf("codec came through %s into %s\n", p.name, target.name)
		}
	}

	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv("MQ_CAP_REDIS")})
	defer rdb.Close()
	c, err := New(rdb, &Config{Logger: testLogger(t)})
	require.NoError(t, err)
	q := os.Getenv("MQ_CAP_QUEUE")
	content, err := c.Inspector().QueueContent(context.Background(), q)
	require.NoError(t, err)
	require.Len(t, content, len(queuedHostile()))
	for _, m := range content {
		require.ErrorIs(t, m.DecodeErr, ErrDecode, m.ID)
		require.Nil(t, m.Value, m.ID)
		fmt.Printf("content refused %s\n", m.ID)
	}

	// A refused message is retried after a backoff, and on a loaded machine
	// its retry can come before the first attempt of another: the ids are
	// counted once each.
	refused := make(chan string, 10*len(content))
	w, err := c.StartWorker(t.Context(), q, &WorkerConfig{
		EndOfQueueBackoff: Constant(20 * time.Millisecond),
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			_, err := m.Value()
			if errors.Is(err, ErrDecode) {
				select {
				case refused <- m.ID:
				default: // (a retry; the first attempts fit)
				}
			}
			return err
		}),
	})
	require.NoError(t, err)
	seen := map[string]bool{}
	for len(seen) < len(content) {
		select {
		case id := <-refused:
			if !seen[id] {
				seen[id] = true
				fmt.Printf("handler refused %s\n", id)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("timed out waiting for the handler")
		}
	}
	require.NoError(t, w.Close())
	fmt.Println("library survived")
}

// queuedHostile are the payloads TestDecodeUnderMemoryCap stores in its
// queue: all those that no target decodes.
func queuedHostile() []payload {
	return append(hostilePayloads(), extPayloads()[:3]...)
}

// capAddressSpace lowers this process's RLIMIT_AS to its current virtual
// size plus headroom, and returns the new limit. The cap is relative
// because the race detector's runtime maps terabytes of shadow address
// space up front.
func capAddressSpace(t *testing.T, headroom uint64) uint64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	require.NoError(t, err)
	defer f.Close()
	var size uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmSize:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			require.NoError(t, err)
			size = kb << 10
		}
	}
	require.NoError(t, sc.Err())
	require.NotZero(t, size, "no VmSize in /proc/self/status")
	var lim syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_AS, &lim))
	lim.Cur = min(size+headroom, lim.Max)
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_AS, &lim))
	return lim.Cur
}

package mq

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/redistest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// aclCommands is every Redis command that this package, through go-redis,
// sends to one redis-server: what an ACL user of the library must be
// allowed, with the key pattern ~carmine:mq:*. It is the one copy of the
// list. The README's "Redis ACL" section shows it between the
// <!-- acl-commands --> markers, and TestACLCommandsInREADME keeps the two
// equal (go test -run TestACLCommandsInREADME -update-readme . rewrites the
// README's copy).
//
// TestACLCommands runs a tour of every feature as a user allowed exactly
// these commands, and once for each command as a user allowed all but that
// one, which must then be refused. When the scripts start to send a new
// command, the tour fails and names it: add it here. Commands without a
// note are called by the Lua scripts (lua/*.lua) only.
var aclCommands = []string{
	"blmove",     // the worker's end-of-queue sleep, without the sleep hub
	"blmpop",     // the sleep hub's (optional: without it, each sleeping worker holds a connection of its own)
	"config|get", // the worker's warning about eviction (optional: without it, no warning)
	"del",        // ClearQueues, ClearAllQueues; a poll's surplus sleep sentinels
	"eval",       // each script, when the server's script cache lacks it
	"evalsha",
	"exists",
	"get",
	"hdel",
	"hexists",
	"hget",
	"hincrby",
	"hlen",  // also QueueNames
	"hmget", // receipts
	"hscan", // QueueContent
	"hset",
	"hsetnx",
	"llen", // also the worker's sleep
	"lpush",
	"lrange",  // a relay reading handoffs (docs/protocol.md §22)
	"lrem",    // a relay removing a record it delivered
	"ltrim",   // a poll's surplus sleep sentinels
	"ping",    // the health check of the client's subscription (cancels, results)
	"publish", // a final outcome in a queue that uses results; cancel.lua, a cancel of a running message
	"rename",  // receipts' generations
	"rpop",
	"rpoplpush",
	"rpush", // a prefetched message given back
	"sadd",
	"scan", // QueueNames, ClearAllQueues
	"scard",
	"set",
	"setrange", // an enqueue's check that Redis is not full
	"sismember",
	"smembers", // the counts, while done holds a Carmine worker's ids
	"srem",
	"subscribe",   // Client.WaitResult; the client's cancel subscription, with its first worker
	"time",        // every script reads the server's clock
	"unlink",      // receipts' generations; DeleteDeadLetters
	"unsubscribe", // the last worker of a queue stopped while the client's subscription goes on (results, other queues)
	"zadd",        // also a worker's heartbeat
	"zcard",
	"zrange",
	"zrangebyscore",
	"zrem",
	"zrevrange", // DeadLetters
}

// aclKeys is the key pattern of the library's ACL user, and aclChannels
// its channel pattern (cancels and results, docs/protocol.md §20, §21).
const aclKeys, aclChannels = "~carmine:mq:*", "&carmine:mq:*"

// aclSetUser is the ACL SETUSER command that creates (or resets) the user
// name with password, allowed cmds on the library's keys and nothing else.
func aclSetUser(name, password string, cmds []string) []string {
	args := []string{"ACL", "SETUSER", name, "reset", "on", ">" + password, aclKeys, aclChannels, "-@all"}
	for _, c := range cmds {
		args = append(args, "+"+c)
	}
	return args
}

var updateREADME = flag.Bool("update-readme", false, "rewrite the README's Redis ACL command list from aclCommands")

// TestACLCommandsInREADME: the README shows aclCommands, in an ACL SETUSER
// line that can be pasted into redis-cli.
func TestACLCommandsInREADME(t *testing.T) {
	t.Parallel()
	const begin, end = "<!-- acl-commands -->\n", "<!-- /acl-commands -->"
	want := "```\n" + strings.Join(aclSetUser("mq", "choose-a-password", aclCommands), " ") + "\n```\n"
	b, err := os.ReadFile("README.md")
	require.NoError(t, err)
	readme := string(b)
	i := strings.Index(readme, begin)
	j := strings.Index(readme, end)
	require.True(t, i >= 0 && j > i, "README.md has no %q ... %q section", strings.TrimSpace(begin), end)
	got := readme[i+len(begin) : j]
	if got == want {
		return
	}
	if *updateREADME {
		readme = readme[:i+len(begin)] + want + readme[j:]
		require.NoError(t, os.WriteFile("README.md", []byte(readme), 0o644))
		return
	}
	t.Errorf("README.md's ACL command list differs from aclCommands in acl_test.go; "+
		"run go test -run TestACLCommandsInREADME -update-readme . to rewrite it\n"+
		"README has:\n%s\nwant:\n%s", got, want)
}

// TestACLCommands: every feature works as an ACL user allowed aclCommands
// only, and each of them is needed: without it, Redis refuses it somewhere
// in the tour. Each run has its own redis-server, so the runs go in
// parallel; -short runs only the first.
func TestACLCommands(t *testing.T) {
	t.Run("all", func(t *testing.T) {
		t.Parallel()
		refused, err := aclRun(t, aclCommands)
		if len(refused) > 0 {
			t.Errorf("Redis refused the library these commands: %s\n"+
				"add each one the library really sends to aclCommands in acl_test.go (and run "+
				"go test -run TestACLCommandsInREADME -update-readme .)", strings.Join(refused, ", "))
		}
		require.NoError(t, err)
	})
	if testing.Short() {
		return
	}
	for _, cmd := range aclCommands {
		t.Run("without "+cmd, func(t *testing.T) {
			t.Parallel()
			others := slices.DeleteFunc(slices.Clone(aclCommands), func(c string) bool { return c == cmd })
			refused, err := aclRun(t, others)
			t.Logf("the tour without %s: %v", cmd, err)
			if !slices.ContainsFunc(refused, func(r string) bool { return strings.HasPrefix(r, cmd+" ") }) {
				t.Errorf("the tour never needed %s (refused: %v); remove it from aclCommands, or make the tour use it", cmd, refused)
			}
		})
	}
}

// aclRun starts a redis-server, creates an ACL user allowed cmds, runs the
// tour as that user and answers what Redis refused the user (from ACL LOG,
// each as "command (context, n times)" or "key k (...)") and the tour's
// first failure.
func aclRun(t *testing.T, cmds []string) (refused []string, err error) {
	r := redistest.Start(t, "--acllog-max-len", "1000")
	admin := r.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const user = "mq"
	setUser := aclSetUser(user, "secret", cmds)
	args := make([]any, len(setUser))
	for i, a := range setUser {
		args[i] = a
	}
	require.NoError(t, admin.Do(ctx, args...).Err())
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr, Username: user, Password: "secret"})
	t.Cleanup(func() { _ = rdb.Close() })
	log := &logRecorder{}
	c, err := New(rdb, &Config{Logger: log.logger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() }) // the results tour's subscription
	tour := &aclTour{ctx: ctx, c: c, admin: admin, user: user}
	err = tour.run()
	refused, lerr := tour.refused()
	require.NoError(t, lerr)
	if err == nil && len(refused) > 0 {
		err = fmt.Errorf("Redis refused %s", strings.Join(refused, ", "))
	}
	if err != nil {
		for _, e := range log.errors() {
			t.Logf("logged error: %s", e)
		}
	}
	return refused, err
}

package mq

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gocarmine/mq/lua"
	"github.com/redis/go-redis/v9"
)

// Every script is composed at load time from shared parts and its own body,
// so that the status computation of SPEC section 2 is written once. The
// composed texts are pinned by a golden test (testdata/lua/*.lua.golden).
var scriptParts = map[string][]string{
	"enqueue":    {"prelude", "status", "enqueue"},
	"dequeue":    {"prelude", "status", "outcome", "dequeue"},
	"msg-status": {"prelude", "status", "msg-status"},
	"renew":      {"prelude", "outcome", "renew"},
}

var (
	enqueueScript       = composeScript("enqueue")
	pollScript          = composeScript("dequeue")
	messageStatusScript = composeScript("msg-status")
	renewScript         = composeScript("renew")
)

// composeSource joins the named files of lua/ into one script text.
func composeSource(parts ...string) string {
	var b strings.Builder
	for i, p := range parts {
		src, err := lua.FS.ReadFile(p + ".lua")
		if err != nil {
			panic("mq: missing embedded script " + p + ": " + err.Error())
		}
		if i > 0 {
			b.WriteString("\n")
		}
		b.Write(src)
	}
	return b.String()
}

func composeScript(name string) *redis.Script {
	return redis.NewScript(composeSource(scriptParts[name]...))
}

// isNoScript tells whether err is Redis's answer to EVALSHA of an unknown
// script.
func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// runScript runs a script once, within ctx (see within).
func runScript(ctx context.Context, c *Client, s *redis.Script, keys []string, args ...any) *redis.Cmd {
	cmd, err := within(c, ctx, func(ctx context.Context) (*redis.Cmd, error) {
		cmd := s.Run(ctx, c.rdb, keys, args...)
		return cmd, cmd.Err()
	})
	if cmd == nil {
		cmd = redis.NewCmd(ctx)
		cmd.SetErr(err)
	}
	return cmd
}

// runScriptPipelined runs one script many times in one round trip, each
// call with its own arguments, and answers each call's result in
// order. Calls that met an empty script cache are sent again with EVAL,
// which is safe: a NOSCRIPT answer means the call did nothing. It returns
// when ctx ends, as within does; the calls not answered by then carry
// ctx's error.
func runScriptPipelined(ctx context.Context, c *Client, s *redis.Script, keys []string, argss [][]any) []*redis.Cmd {
	cmds := make([]*redis.Cmd, len(argss))
	_, err := within(c, ctx, func(ctx context.Context) (struct{}, error) {
		pipe := c.rdb.Pipeline()
		sent := make([]*redis.Cmd, len(argss))
		for i, args := range argss {
			sent[i] = s.EvalSha(ctx, pipe, keys, args...)
		}
		_, _ = pipe.Exec(ctx) // errors stay on each command
		var retry []int
		for i, c := range sent {
			if isNoScript(c.Err()) {
				retry = append(retry, i)
			}
		}
		if len(retry) > 0 {
			pipe = c.rdb.Pipeline()
			for _, i := range retry {
				sent[i] = s.Eval(ctx, pipe, keys, argss[i]...)
			}
			_, _ = pipe.Exec(ctx)
		}
		copy(cmds, sent)
		return struct{}{}, nil
	})
	if err != nil {
		for i := range cmds {
			cmds[i] = redis.NewCmd(ctx)
			cmds[i].SetErr(err)
		}
	}
	return cmds
}

// redisError wraps the Redis errors that callers may want to tell apart:
// an OOM refusal becomes ErrRedisFull.
func redisError(err error) error {
	if err != nil && strings.HasPrefix(err.Error(), "OOM ") {
		return fmt.Errorf("%w: %w", ErrRedisFull, err)
	}
	return err
}

var errUnexpectedReply = errors.New("mq: unexpected reply from Redis")

package mq

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
)

// RouteRedisLogs sends go-redis's own log lines (a failed dial, a
// Sentinel's new master, ...) to logger, instead of the standard logger
// on stderr where go-redis writes them by default; nil means
// slog.Default(). A line that speaks of a failure (an error, a panic, a
// failed or refused call, a timeout) is logged at Warn, any other at Info,
// with the attribute source=go-redis.
//
// It is a function of the process, not a setting of a Client, because
// go-redis's logging is the process's: go-redis (v9) has one logger for
// every client (redis.SetLogger; its log level, logging.SetLogLevel, is
// global too), and no logger among a client's Options. A Config field
// would let two clients of one process overwrite each other's choice, the
// last one made winning for both. So this routes the lines of every
// go-redis client of the process, whatever library made it, and a later
// call, or a redis.SetLogger elsewhere, replaces it. mq.New never calls
// it: a service opts in once, in main.
func RouteRedisLogs(logger *slog.Logger) {
	if logger == nil {
		logger = slog.Default()
	}
	redis.SetLogger(redisLogger{logger})
}

// redisLogger is go-redis's logging interface onto a *slog.Logger.
type redisLogger struct{ log *slog.Logger }

// failureWords mark a go-redis log line that reports a failure.
var failureWords = []string{"error", "fail", "panic", "refused", "timeout", "timed out", "unable", "cannot", "can't"}

// Printf logs one go-redis line.
func (l redisLogger) Printf(ctx context.Context, format string, args ...any) {
	if ctx == nil {
		ctx = context.Background()
	}
	text := strings.TrimSpace(fmt.Sprintf(format, args...))
	level := slog.LevelInfo
	lower := strings.ToLower(text)
	for _, word := range failureWords {
		if strings.Contains(lower, word) {
			level = slog.LevelWarn
			break
		}
	}
	l.log.Log(ctx, level, "redis: "+strings.TrimPrefix(text, "redis: "), slog.String("source", "go-redis"))
}

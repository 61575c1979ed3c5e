package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gocarmine/mq"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes of mqctl.
const (
	exitOK       = 0
	exitFailure  = 1 // Redis, bad content, a refused confirmation
	exitUsage    = 2 // flags, arguments, connection settings
	exitNotFound = 3 // a queue that does not exist, a message or dead letter that is not in its queue
	exitRefused  = 4 // an enqueue (or a dead letter's requeue) the queue refused
)

// exitError is an error with the exit code it ends mqctl with. Errors that
// reach run without one come from cobra's parsing and are usage errors.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// failure wraps err as a failure (exit 1), unless it carries a code already.
func failure(err error) error {
	var ee *exitError
	if err == nil || errors.As(err, &ee) {
		return err
	}
	return &exitError{code: exitFailure, err: err}
}

// usageErrorf is a usage error (exit 2) of our own checks.
func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// app is one run of mqctl: its streams, environment, flags, and the Redis
// connection it opens on first use.
type app struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string

	conn connFlags
	json bool

	rdb    redis.UniversalClient
	client *mq.Client
}

// run runs mqctl with args (without the program name) and answers its exit
// code. It is main without the process: tests call it with their own
// streams and environment.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	defer a.close()
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if !errors.As(err, &ee) {
		// cobra's own errors: unknown commands and flags, wrong arguments.
		ee = &exitError{code: exitUsage, err: err}
	}
	msg := oneLine(ee.err.Error())
	if a.rdb != nil && ee.code != exitUsage {
		// The server is part of what went wrong: a Redis that is not the
		// one meant, or down.
		msg = a.conn.server() + ": " + msg
	}
	fmt.Fprintf(stderr, "mqctl: %s\n", msg)
	if ee.code == exitUsage {
		fmt.Fprintln(stderr, "Run 'mqctl --help' for usage.")
	}
	return ee.code
}

// oneLine keeps an error message on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// rootCommand builds the command tree.
func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "mqctl",
		Short: "Look at and administer the queues of github.com/gocarmine/mq (Carmine's queues) in Redis",
		Long: `mqctl looks at and administers the message queues of github.com/gocarmine/mq,
which are laid out as Carmine's, in a Redis, a Redis Cluster or behind Sentinel.

Every flag of the connection may also come from the environment as
MQCTL_<FLAG> (MQCTL_PASSWORD for --password, MQCTL_TLS_CA for --tls-ca);
the Redis URL comes from --url or REDIS_URL. A flag given on the command
line wins over the environment. With neither (nor --cluster or --sentinel),
mqctl says that it uses the default, redis://127.0.0.1:6379/0; errors name
the server they come from.

Exit codes: 0 success, 1 failure, 2 bad usage, 3 queue, message or dead
letter not found, 4 enqueue (or requeue of a dead letter) refused by the
queue.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Configuration from the environment, for every command.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			flags := cmd.Root().PersistentFlags()
			if err := a.applyEnv(flags); err != nil {
				return err
			}
			// A Redis nobody chose is named, never silently used.
			a.conn.urlDefaulted = !flags.Changed("url") && a.getenv("REDIS_URL") == ""
			if a.conn.urlDefaulted && len(a.conn.cluster) == 0 && len(a.conn.sentinel) == 0 {
				fmt.Fprintf(a.stderr, "mqctl: using %s\n", a.conn.server())
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: err}
	})
	root.CompletionOptions.DisableDefaultCmd = true
	a.conn.register(root.PersistentFlags())
	root.PersistentFlags().BoolVar(&a.json, "json", false, "print JSON for scripts instead of tables")

	root.AddCommand(
		a.queuesCommand(),
		a.showCommand(),
		a.messageCommand(),
		a.enqueueCommand(),
		a.deleteCommand(),
		a.cancelCommand(),
		a.pauseCommand(true),
		a.pauseCommand(false),
		a.clearCommand(),
		a.deadCommand(),
		a.resultCommand(),
		a.workersCommand(),
		a.historyCommand(),
		a.schedulesCommand(),
		a.limitsCommand(),
		a.batchCommand(),
		a.serveCommand(),
	)
	return root
}

// applyEnv sets every flag not given on the command line from its
// environment variable, if set.
func (a *app) applyEnv(flags *pflag.FlagSet) error {
	var err error
	flags.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		name := envName(f.Name)
		if name == "" {
			return
		}
		if v := a.getenv(name); v != "" {
			if e := f.Value.Set(v); e != nil {
				err = usageErrorf("%s=%q: %v", name, v, e)
			}
		}
	})
	return err
}

// envName is the environment variable of a global flag: REDIS_URL for
// --url, none for --json, MQCTL_<FLAG> for the others.
func envName(flag string) string {
	switch flag {
	case "url":
		return "REDIS_URL"
	case "json", "help":
		return ""
	}
	return "MQCTL_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// mq opens the connection on first use and answers the library's client.
func (a *app) mq() (*mq.Client, error) {
	if a.client != nil {
		return a.client, nil
	}
	rdb, cfg, err := a.conn.open(a.stderr)
	if err != nil {
		return nil, err
	}
	c, err := mq.New(rdb, cfg)
	if err != nil {
		_ = rdb.Close()
		return nil, usageErrorf("%v", err)
	}
	a.rdb, a.client = rdb, c
	return c, nil
}

// close closes the connection, if one was opened.
func (a *app) close() {
	if a.rdb != nil {
		_ = a.rdb.Close()
	}
}

// commandContext is the context of one command: the run's, bounded by
// --timeout.
func (a *app) commandContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if a.conn.timeout > 0 {
		return context.WithTimeout(ctx, a.conn.timeout)
	}
	return context.WithCancel(ctx)
}

// action adapts a command's body: it gets the library's client and a
// context bounded by --timeout, and its errors are failures unless they say
// otherwise.
func (a *app) action(body func(ctx context.Context, c *mq.Client, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := a.mq()
		if err != nil {
			return err
		}
		ctx, cancel := a.commandContext(cmd)
		defer cancel()
		if err := body(ctx, c, args); err != nil {
			switch {
			case errors.Is(err, mq.ErrInvalidQueueName), errors.Is(err, mq.ErrInvalidMessageID), errors.Is(err, mq.ErrInvalidOption):
				return &exitError{code: exitUsage, err: err}
			case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
				err = fmt.Errorf("%w (after --timeout %v)", err, a.conn.timeout)
			}
			return failure(err)
		}
		return nil
	}
}

// args checks the number of positional arguments, as a usage error.
func args(min, max int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < min || (max >= 0 && len(args) > max) {
			return usageErrorf("%s: want %s, got %d argument(s)", cmd.Name(), names, len(args))
		}
		return nil
	}
}

// defaultTimeout bounds each command unless --timeout says otherwise.
const defaultTimeout = time.Minute

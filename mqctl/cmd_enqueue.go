package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/gocarmine/mq"
	"github.com/spf13/cobra"
)

// enqueueView is the queue's answer to an enqueue.
type enqueueView struct {
	Queue string `json:"queue"`
	ID    string `json:"id"`
	// Action is "added" or "updated"; "" when refused.
	Action string `json:"action"`
	// Refused says why the queue refused the enqueue: "already queued",
	// "locked" or "in backoff"; "" when it took effect.
	Refused string `json:"refused,omitempty"`
}

// enqueueCommand enqueues one message.
func (a *app) enqueueCommand() *cobra.Command {
	var (
		data    string
		hasData bool
		raw     bool
		opts    mq.EnqueueOptions
	)
	cmd := &cobra.Command{
		Use:   "enqueue QUEUE [ID]",
		Short: "Enqueue a message: JSON (stored as MessagePack) or raw bytes, from --data or stdin",
		Long: `Enqueue one message with the id ID (default: a random UUID). The content is
--data's value, or standard input when --data is not given. It is read as
one JSON value and stored as MessagePack by the library's codec, which is
what a worker of github.com/gocarmine/mq decodes by default; with --raw it
is stored as it is, bytes for bytes.

An enqueue the queue refuses (the id is already queued, being handled or in
its dedupe backoff, and the options do not allow an update or requeue) is
reported and exits with code 4.`,
		Args: args(1, 2, "QUEUE [ID]"),
		PreRun: func(cmd *cobra.Command, _ []string) {
			hasData = cmd.Flags().Changed("data")
		},
		RunE: a.action(func(ctx context.Context, c *mq.Client, args []string) error {
			queue := args[0]
			if len(args) == 2 {
				opts.MessageID = args[1]
			}
			content := []byte(data)
			if !hasData {
				if isTerminal(a.stdin) {
					return usageErrorf("no content: give --data, or pipe it on standard input")
				}
				var err error
				if content, err = readLimited(a.stdin, mq.DefaultMaxMessageSize); err != nil {
					return err
				}
			}
			var msg any = mq.Raw(content)
			if !raw {
				v, err := parseJSON(content)
				if err != nil {
					return fmt.Errorf("content is not one JSON value (--raw stores bytes as they are): %w", err)
				}
				msg = v
			}
			res, err := c.Enqueue(ctx, queue, msg, &opts)
			if err != nil {
				return err
			}
			v := enqueueView{Queue: queue, ID: res.MessageID, Action: string(res.Action)}
			if res.Refused != nil {
				v.Refused = refusal(res.Refused)
			}
			if a.json {
				if err := printJSON(a.stdout, v); err != nil {
					return err
				}
			} else if v.Refused == "" {
				fmt.Fprintf(a.stdout, "%s %s in %s\n", v.Action, safeText(v.ID), safeText(queue))
			}
			if res.Refused != nil {
				return &exitError{code: exitRefused, err: fmt.Errorf("queue %s refused message %s: %s", safeText(queue), safeText(v.ID), v.Refused)}
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVarP(&data, "data", "d", "", "the content (default: standard input)")
	f.BoolVar(&raw, "raw", false, "store the content as it is instead of JSON as MessagePack")
	f.DurationVar(&opts.InitialBackoff, "backoff", 0, "do not handle before this delay (EnqueueOptions.InitialBackoff)")
	f.DurationVar(&opts.LockTime, "lock-time", 0, "the message's own lock time (default: the worker's)")
	f.BoolVar(&opts.CanUpdate, "update", false, "replace the content of a message with this id still waiting (CanUpdate)")
	f.BoolVar(&opts.CanRequeue, "requeue", false, "queue it again once a handling or backoff of this id ends (CanRequeue)")
	f.BoolVar(&opts.ResetInitialBackoff, "reset-backoff", false, "set a queued message's backoff to --backoff (ResetInitialBackoff)")
	return cmd
}

// refusal names why the queue refused an enqueue, for people and scripts.
func refusal(err error) string {
	switch {
	case errors.Is(err, mq.ErrAlreadyQueued):
		return "already queued"
	case errors.Is(err, mq.ErrLocked):
		return "locked"
	case errors.Is(err, mq.ErrBackoff):
		return "in backoff"
	}
	return err.Error()
}

// readLimited reads r whole, refusing more than limit bytes.
func readLimited(r io.Reader, limit int) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("reading standard input: %w", err)
	}
	if len(b) > limit {
		return nil, fmt.Errorf("standard input holds more than %d bytes: %w", limit, mq.ErrMessageTooLarge)
	}
	return b, nil
}

// parseJSON reads exactly one JSON value, with integers kept as int64 (or
// uint64) so that MessagePack stores them as integers, not floats.
func parseJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty")
		}
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one value")
	}
	return numbers(v), nil
}

// numbers replaces every json.Number in v by an int64, a uint64 or a
// float64.
func numbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		if u, err := strconv.ParseUint(v.String(), 10, 64); err == nil {
			return u
		}
		f, _ := v.Float64()
		return f
	case map[string]any:
		for k, e := range v {
			v[k] = numbers(e)
		}
	case []any:
		for i, e := range v {
			v[i] = numbers(e)
		}
	}
	return v
}

package main

// Commands whose library side is being built: live workers (the core
// library), and the dashboard (an http.Handler in a
// module of its own). Each is wired in already, hidden from the help, and
// answers that it is not available yet. When the library exports its part,
// fill in the command's RunE with a.action (which opens the connection and
// bounds the context), print with printJSON or a table as the other
// commands do, then drop Hidden.

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

// notYet is the body of a command not available yet: its answer wraps
// errors.ErrUnsupported.
func notYet(what string) func(*cobra.Command, []string) error {
	return func(*cobra.Command, []string) error {
		return &exitError{code: exitFailure, err: fmt.Errorf("%s: %w", what, errors.ErrUnsupported)}
	}
}

// laterCommands are the hidden placeholders.
func (a *app) laterCommands() []*cobra.Command {
	workers := &cobra.Command{
		Use:    "workers [QUEUE]",
		Short:  "List the live workers (host, pid, started, last poll, busy handlers)",
		Hidden: true,
		Args:   args(0, 1, "[QUEUE]"),
		RunE:   notYet("live workers are not in this version of the library yet"),
	}
	// TODO(dashboard): mount the dashboard's http.Handler at --path, read
	// only unless --allow-actions, and serve it on --addr until the
	// context ends (http.Server.Shutdown).
	serve := &cobra.Command{
		Use:    "serve",
		Short:  "Serve the web dashboard",
		Hidden: true,
		Args:   args(0, 0, "no arguments"),
		RunE:   notYet("the dashboard is not in this version yet"),
	}
	serve.Flags().String("addr", "127.0.0.1:8080", "address to listen on")
	serve.Flags().String("path", "/", "path to mount the dashboard under")
	serve.Flags().Bool("allow-actions", false, "allow requeue, delete, pause and resume from the page")
	return []*cobra.Command{workers, serve}
}

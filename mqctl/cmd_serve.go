package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gocarmine/mq/dashboard"
	"github.com/spf13/cobra"
)

// serveShutdown bounds how long serve waits for requests in flight once
// its context ends.
const serveShutdown = 5 * time.Second

// serveCommand serves the web dashboard until mqctl is interrupted.
func (a *app) serveCommand() *cobra.Command {
	var (
		addr, prefix string
		readOnly     bool
		allow        bool
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the web dashboard (read-only unless --allow-actions)",
		Long: `Serve the web dashboard (github.com/gocarmine/mq/dashboard) of the queues on
--addr, under --prefix, until interrupted: every queue with its counts and a
chart of them, a queue's messages, live workers and dead letters. It is
read-only unless --allow-actions (or --read-only=false) turns on the buttons
that pause, resume, delete and requeue. It does no authentication: keep it
on loopback (the default) or put your own in front of it. --timeout does
not bound it; each request's Redis calls are bounded by 5 seconds.`,
		Args: args(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if allow && cmd.Flags().Changed("read-only") && readOnly {
				return usageErrorf("serve: --allow-actions and --read-only contradict each other")
			}
			if allow {
				readOnly = false
			}
			mount, err := cleanPrefix(prefix)
			if err != nil {
				return err
			}
			c, err := a.mq()
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(a.stderr, nil))
			h := dashboard.New(c, dashboard.Options{AllowActions: !readOnly, Logger: log})
			mux := http.NewServeMux()
			if mount == "/" {
				mux.Handle("/", h)
			} else {
				mux.Handle(mount+"/", http.StripPrefix(mount, h))
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return usageErrorf("serve: %v", err)
			}
			return failure(a.serveOn(cmd.Context(), ln, mux, mount, !readOnly))
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:8080", "address to listen on (port 0: any free port)")
	f.StringVar(&prefix, "prefix", "/", "path to mount the dashboard under")
	f.BoolVar(&readOnly, "read-only", true, "refuse every action (pause, resume, delete, requeue)")
	f.BoolVar(&allow, "allow-actions", false, "allow pause, resume, delete and requeue from the page (--read-only=false)")
	return cmd
}

// serveOn serves h on ln until ctx ends, then shuts the server down.
func (a *app) serveOn(ctx context.Context, ln net.Listener, h http.Handler, mount string, actions bool) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	mode := "read-only"
	if actions {
		mode = "actions allowed"
	}
	path := mount
	if path != "/" {
		path += "/"
	}
	fmt.Fprintf(a.stdout, "serving the dashboard on http://%s%s (%s); interrupt to stop\n", ln.Addr(), path, mode)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), serveShutdown)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("serve: shutting down: %w", err)
	}
	return nil
}

// cleanPrefix checks --prefix and answers it with one leading slash and no
// trailing one ("/" for the root).
func cleanPrefix(p string) (string, error) {
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#{} \t") {
		return "", usageErrorf("serve: --prefix %q: want a path such as /mq", p)
	}
	p = "/" + strings.Trim(p, "/")
	if strings.Contains(p, "//") {
		return "", usageErrorf("serve: --prefix %q: want a path such as /mq", p)
	}
	return p, nil
}

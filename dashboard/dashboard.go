// Package dashboard is a web dashboard for the queues of
// github.com/gocarmine/mq: an http.Handler that a service mounts under any
// path, with its page, script and styles embedded (no CDN, no build step).
//
// It shows every queue with its counts by state (queued, locked, in
// backoff, done in a dedupe window, dead letters) and a chart of them over
// time, a queue's handlings per minute over the last hour (processed and
// failed, from the history the workers keep in Redis, Inspector.History),
// the live workers of a queue in every process (Inspector.Workers),
// pages through a queue's messages with their status and content
// (decoded by the client's codec, which refuses hostile bytes; what it
// cannot decode is shown as such) and through its dead letters with their
// last error, and, when actions are allowed, pauses and resumes queues,
// deletes messages, and requeues or deletes dead letters, one or all.
//
// Mount it with http.StripPrefix:
//
//	mux.Handle("/mq/", http.StripPrefix("/mq", dashboard.New(client, dashboard.Options{})))
//
// The dashboard is read-only unless Options.AllowActions is set. Actions
// are POST requests that must carry the header the page's script sets and,
// when the browser says where they come from, come from the dashboard's own
// origin: a page of another site cannot make a visitor's browser act.
// Authentication is the mounting service's: wrap the handler in yours.
//
// Every page view costs a bounded number of Redis calls, whatever the
// queues' lengths: the counts are O(1) per queue, and messages and dead
// letters are read a page at a time (Inspector.QueueMessages,
// Inspector.DeadLetters).
package dashboard

import (
	"embed"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/gocarmine/mq"
)

//go:embed assets
var assets embed.FS

// Options configure the dashboard. The zero value is a read-only dashboard
// of every queue the client finds.
type Options struct {
	// AllowActions turns on the buttons that change queues: pause,
	// resume and delete messages, requeue and delete dead letters.
	// Default: false, a read-only dashboard that refuses every POST.
	AllowActions bool

	// Queues lists the queues to show. Default: every queue the client's
	// QueueNames finds (the queue registry and a SCAN of the keyspace,
	// read at most every RefreshQueues); a queue cleared meanwhile leaves
	// the list at the next read of the counts, which finds it gone.
	Queues []string

	// RefreshQueues is how long a read of the queue names is reused: a
	// new queue appears within it. Default: 10 seconds.
	RefreshQueues time.Duration

	// Interval is how often the page asks for fresh counts, and the
	// spacing of the samples of the charts. Default: 2 seconds.
	Interval time.Duration

	// History is how many samples the chart of each queue keeps. The
	// dashboard samples while someone looks (each page's poll takes one,
	// at most one per Interval), in memory. Default: 300.
	History int

	// PageSize is the number of messages, and of dead letters, on a
	// page. Default: 50; at most mq.MaxPageSize.
	PageSize int

	// MaxContent is how many bytes of each message's rendered content a
	// page carries; the rest is cut. Default: 4096.
	MaxContent int

	// Timeout bounds the Redis calls of one request. Default: 5 seconds.
	Timeout time.Duration

	// Title names the dashboard in its page. Default: "mq".
	Title string

	// Logger receives the dashboard's errors. Default: slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.RefreshQueues <= 0 {
		o.RefreshQueues = 10 * time.Second
	}
	if o.Interval <= 0 {
		o.Interval = 2 * time.Second
	}
	if o.History <= 0 {
		o.History = 300
	}
	if o.PageSize <= 0 {
		o.PageSize = 50
	}
	o.PageSize = min(o.PageSize, mq.MaxPageSize)
	if o.MaxContent <= 0 {
		o.MaxContent = 4096
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Title == "" {
		o.Title = "mq"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Queues = append([]string(nil), o.Queues...)
	return o
}

// maxQueues bounds the queues the dashboard keeps a history of.
const maxQueues = 1000

// handler is the dashboard.
type handler struct {
	client *mq.Client
	opts   Options
	log    *slog.Logger
	mux    *http.ServeMux
	hist   *history
	names  nameCache
	now    func() time.Time
}

// New returns the dashboard of client's queues as an http.Handler, to be
// mounted under any path with http.StripPrefix (see the package doc).
func New(client *mq.Client, opts Options) http.Handler {
	opts = opts.withDefaults()
	h := &handler{
		client: client,
		opts:   opts,
		log:    opts.Logger.With("component", "mq-dashboard"),
		hist:   newHistory(opts.History, opts.Interval),
		now:    time.Now,
	}
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", h.index)
	m.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /api/overview", h.overview)
	m.HandleFunc("GET /api/messages", h.messages)
	m.HandleFunc("GET /api/message", h.message)
	m.HandleFunc("GET /api/workers", h.workers)
	m.HandleFunc("GET /api/dead", h.deadLetters)
	m.HandleFunc("GET /api/history", h.outcomeHistory)
	m.HandleFunc("GET /api/schedules", h.schedules)
	m.Handle("POST /api/pause", h.action(h.pause))
	m.Handle("POST /api/resume", h.action(h.resume))
	m.Handle("POST /api/delete", h.action(h.deleteMessage))
	m.Handle("POST /api/cancel", h.action(h.cancelMessage))
	m.Handle("POST /api/dead/requeue", h.action(h.requeueDead))
	m.Handle("POST /api/dead/delete", h.action(h.deleteDead))
	h.mux = m
	return h
}

// ServeHTTP serves the page, its assets and its JSON API.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	// Everything the page needs comes from here; nothing is inline, so
	// content that slipped into the markup could not run either.
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	if r.URL.Path == "" {
		// Mounted at /mq and asked for /mq: the page's relative links
		// need the slash.
		p := r.URL.EscapedPath()
		if r.RequestURI != "" {
			p, _, _ = strings.Cut(r.RequestURI, "?")
		}
		// Set by hand: http.Redirect would resolve it against the
		// stripped path.
		hd.Set("Location", path.Base(p)+"/")
		w.WriteHeader(http.StatusMovedPermanently)
		return
	}
	h.mux.ServeHTTP(w, r)
}

func (h *handler) index(w http.ResponseWriter, r *http.Request) {
	page, err := assets.ReadFile("assets/index.html")
	if err != nil {
		http.Error(w, "missing page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(page)
}

// writeJSON answers v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v) // HTML-escaped: <, > and & come out as \u escapes
}

// errorJSON is the body of every error answer of the API.
type errorJSON struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorJSON{Error: msg})
}

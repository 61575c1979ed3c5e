package dashboard

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gocarmine/mq"
)

// longIDs are message ids as services make them: long enough that a
// narrow page must shorten them, not break them a character a line.
var longIDs = []string{
	"invoice-2026-12-06-7f3c2a9e-4b1d-4c8e-9a57-1e2d3c4b5a69",
	"user:8d1f0c54-22aa-4e1b-b0c9-6a3e9d7f1c20:welcome-email",
}

// layoutReport is what the page says of its own layout at one width.
type layoutReport struct {
	// ScrollWidth and Width: the document's width and the viewport's; the
	// page overflows sideways when the first is the larger.
	ScrollWidth, Width int
	// IDs is how many id cells the page shows; Broken lists those whose
	// id takes more than one line, or whose full id the cell does not
	// keep (in its text and its title, for a pointer or a screen reader).
	IDs    int
	Broken []string
	// Ticks are the counts chart's time-axis labels, left to right, and
	// MinuteTicks the per-minute chart's; Overlap names two that overlap
	// or one outside its chart.
	Ticks, MinuteTicks []string
	Overlap            string
	// Processed and Failed are the per-minute chart's totals.
	Processed, Failed int
}

// layoutJS measures the page (see layoutReport); null until the messages,
// the dead letters, the worker and a chart of 16 samples (3 s) are drawn.
const layoutJS = `(() => {
	const msgs = document.querySelectorAll('#messages tr[data-message]').length;
	const dead = document.querySelectorAll('#dead-letters tr[data-dead]').length;
	const chart = document.getElementById('chart');
	if (msgs < 17 || dead < 2 || Number(chart.dataset.samples) < 16 || !document.querySelector('#workers tr[data-worker]')) return null;
	const total = (s) => Number(document.querySelector('#minutes-legend [data-legend="' + s + '"]')?.dataset.total);
	const r = {ScrollWidth: document.documentElement.scrollWidth, Width: window.innerWidth, IDs: 0, Broken: [], Ticks: [], MinuteTicks: [], Overlap: '',
		Processed: total('processed'), Failed: total('failed')};
	for (const td of document.querySelectorAll('td.id')) {
		r.IDs++;
		const row = td.closest('tr');
		const id = row.dataset.message || row.dataset.dead || row.dataset.worker;
		const range = document.createRange();
		range.selectNodeContents(td.querySelector('.id-text') || td); // the text, not the boxes around it
		const lines = new Set([...range.getClientRects()].map((b) => Math.round(b.top))).size;
		const title = td.querySelector('[title]');
		if (lines !== 1 || td.textContent !== id || !title || title.title !== id) r.Broken.push(id + ': ' + lines + ' lines');
	}
	for (const [svg, out] of [[chart, r.Ticks], [document.getElementById('minutes-chart'), r.MinuteTicks]]) {
		const box = svg.getBoundingClientRect();
		let prev = null;
		for (const t of [...svg.querySelectorAll('text[data-tick]')].sort((a, b) => a.getBoundingClientRect().left - b.getBoundingClientRect().left)) {
			out.push(t.textContent);
			const b = t.getBoundingClientRect();
			if (b.left < box.left || b.right > box.right) r.Overlap = svg.id + ': ' + t.textContent + ' outside the chart';
			if (prev && b.left < prev.right) r.Overlap = svg.id + ': ' + t.textContent + ' overlaps the label before it';
			prev = b;
		}
	}
	return r;
})()`

// noticesJS lists the action results the page shows, with whether each is
// wholly inside the viewport.
const noticesJS = `[...document.querySelectorAll('[data-notice]')].map((n) => {
	const b = n.getBoundingClientRect();
	const inView = b.top >= 0 && b.left >= 0 && b.bottom <= window.innerHeight && b.right <= window.innerWidth && b.height > 0;
	return n.dataset.notice + ' ' + (inView ? 'visible' : 'hidden') + ': ' + n.querySelector('.notice-text').textContent;
})`

// TestBrowserLayout loads the dashboard in a real chromium at a desktop
// and a phone width, against a real redis-server: the page never scrolls
// sideways (wide tables scroll in their own box), every id keeps to one
// line and keeps its full text, the chart's time axis has labels that do
// not overlap, and an action's result, success or refusal (a requeue
// refused with 409), stays in view, through refreshes and scrolling,
// until dismissed. With -update-screenshot it rewrites the README's
// screenshots at both widths.
func TestBrowserLayout(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	errs := consoleErrors(ctx)
	c, _ := newClient(t)
	bg := context.Background()
	fill(t, c, "emails")
	for _, id := range longIDs {
		if _, err := c.Enqueue(bg, "emails", map[string]any{"id": id}, &mq.EnqueueOptions{MessageID: id, InitialBackoff: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	// The queue holds dead-1 again: the requeue of its dead letter is
	// refused (409) and changes nothing, so the test can ask it at each
	// width.
	if _, err := c.Enqueue(bg, "emails", "again", &mq.EnqueueOptions{MessageID: "dead-1", InitialBackoff: time.Hour}); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, c, Options{AllowActions: true, Interval: 200 * time.Millisecond})
	dir := screenshotDir(t)

	for _, width := range []int64{1280, 400} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			// By way of a blank page: a navigation to the same URL but for
			// its hash would not load the page afresh.
			do(t, ctx, "load", chromedp.EmulateViewport(width, 860), chromedp.Navigate("about:blank"), chromedp.Navigate(srv.URL+"/mq/#q=emails"))
			r := poll[layoutReport](t, ctx, "the page drawn", layoutJS)
			if r.ScrollWidth > r.Width {
				t.Errorf("the page is %d px wide in a %d px viewport: it scrolls sideways", r.ScrollWidth, r.Width)
			}
			if r.IDs != 20 || len(r.Broken) > 0 { // 17 messages, 2 dead letters, 1 worker
				t.Errorf("%d id cells; these break or lose their id: %q", r.IDs, r.Broken)
			}
			if len(r.Ticks) < 2 || len(r.MinuteTicks) < 2 {
				chart, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('chart').outerHTML`))
				t.Logf("the chart: %s", chart)
				t.Errorf("the charts' time axes have labels %q and %q, want two or more each", r.Ticks, r.MinuteTicks)
			}
			// fill's first worker handled 5: 3 succeeded, 2 failed for good.
			if r.Processed != 5 || r.Failed != 2 {
				t.Errorf("the per-minute chart adds up to %d processed, %d failed; want 5 and 2", r.Processed, r.Failed)
			}
			for _, l := range append(r.Ticks, r.MinuteTicks...) {
				if !isClock(l) {
					t.Errorf("time label %q is not a time of day", l)
				}
			}
			if r.Overlap != "" {
				t.Errorf("time labels %q: %s", r.Ticks, r.Overlap)
			}

			// A refused requeue and a pause: both results stay shown.
			clickJS(t, ctx, `#dead-letters tr[data-dead="dead-1"] button[data-action="requeue"]`)
			poll[bool](t, ctx, "the refusal", `document.querySelectorAll('[data-notice="error"]').length === 1`)
			poll[bool](t, ctx, "the queue shown running", `!document.getElementById('pause').disabled`)
			clickJS(t, ctx, `#pause`)
			poll[bool](t, ctx, "the pause's result", `document.querySelectorAll('[data-notice="ok"]').length === 1`)
			waitRefreshes(t, ctx, 3)
			do(t, ctx, "scroll to the end", chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, document.documentElement.scrollHeight)`))
			waitRefreshes(t, ctx, 2)
			shown, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](noticesJS))
			if err != nil {
				t.Fatal(err)
			}
			want := []string{
				`error visible: Requeue dead-1: refused (409 Conflict): mq: requeue dead letter "dead-1" of "emails": mq: already queued`,
				"ok visible: Pause emails: done",
			}
			if strings.Join(shown, "\n") != strings.Join(want, "\n") {
				t.Errorf("after refreshes, scrolled to the end, the page shows\n%s\nwant\n%s", strings.Join(shown, "\n"), strings.Join(want, "\n"))
			}
			n, err := c.Inspector().QueueCounts(bg, "emails")
			if err != nil || !n.Paused {
				t.Fatalf("the pause in Redis: %+v, %v", n, err)
			}

			do(t, ctx, "scroll to the top", chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
			name := fmt.Sprintf("screenshot-%d.png", width)
			var png []byte
			if width < 600 {
				png = viewportShot(t, ctx, dir, name) // the top of the page, as a phone shows it
			} else {
				png = screenshot(t, ctx, dir, name)
			}
			if *updateScreenshot {
				if err := os.WriteFile(name, png, 0o644); err != nil {
					t.Fatal(err)
				}
			}

			// Dismissed, they go, and stay gone.
			clickJS(t, ctx, `[data-notice="error"] button[data-dismiss]`)
			clickJS(t, ctx, `[data-notice="ok"] button[data-dismiss]`)
			waitRefreshes(t, ctx, 2)
			if shown, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](noticesJS)); err != nil || len(shown) > 0 {
				t.Errorf("after dismissal: %q, %v", shown, err)
			}
			if _, err := c.Inspector().ResumeQueue(bg, "emails"); err != nil {
				t.Fatal(err)
			}
		})
	}
	// Chromium logs the refused requeue's answer; nothing else is allowed.
	var other []string
	for _, e := range errs() {
		if !strings.Contains(e, "status of 409 (Conflict)") {
			other = append(other, e)
		}
	}
	if len(other) > 0 {
		t.Errorf("the page logged errors: %q", other)
	}
}

// isClock tells whether s reads as a time of day, 15:04 or 15:04:05.
func isClock(s string) bool {
	for _, layout := range []string{"15:04", "15:04:05"} {
		if _, err := time.Parse(layout, s); err == nil {
			return true
		}
	}
	return false
}

// clickJS clicks the element sel finds, as a user's click would reach it
// (wherever the page has scrolled it).
func clickJS(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false; e.click(); return true; })()`, sel)
	if ok := poll[bool](t, ctx, "to click "+sel, js); !ok {
		t.Fatalf("no %s", sel)
	}
}

// waitRefreshes waits until the page has refreshed n more times.
func waitRefreshes(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	start := poll[int](t, ctx, "the refresh count", `Number(document.body.dataset.refreshes || 0) || null`)
	poll[bool](t, ctx, fmt.Sprintf("%d refreshes", n), fmt.Sprintf(`Number(document.body.dataset.refreshes) >= %d`, start+n))
}

// viewportShot saves what the viewport shows.
func viewportShot(t *testing.T, ctx context.Context, dir, name string) []byte {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
	return png
}

package dashboard

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gocarmine/mq"
)

// TestSchedulesAPI: api/schedules lists the queue's schedules, by name,
// as the library reads them; a bad queue name is a 400.
func TestSchedulesAPI(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	ctx := context.Background()
	in := c.Inspector()
	if _, err := in.SetSchedule(ctx, "reports", mq.Schedule{Name: "nightly", Cron: "0 3 * * *", Zone: "Europe/Paris", Message: mq.Raw("abc")}); err != nil {
		t.Fatal(err)
	}
	if _, err := in.SetSchedule(ctx, "reports", mq.Schedule{Name: "often", Every: time.Minute, Message: mq.Raw("x"), Paused: true}); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, c, Options{})
	code, body := get(t, srv, "/mq/api/schedules?queue=reports")
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	got := decodeJSON[schedulesJSON](t, body)
	if got.Queue != "reports" || len(got.Schedules) != 2 {
		t.Fatalf("%+v", got)
	}
	n, o := got.Schedules[0], got.Schedules[1]
	paris, _ := time.LoadLocation("Europe/Paris")
	if n.Name != "nightly" || n.Cron != "0 3 * * *" || n.Zone != "Europe/Paris" || n.Paused || n.Size != 3 ||
		time.UnixMilli(n.NextMS).In(paris).Hour() != 3 {
		t.Errorf("nightly: %+v", n)
	}
	if o.Name != "often" || o.Every != "1m0s" || !o.Paused || o.NextMS != 0 {
		t.Errorf("often: %+v", o)
	}
	if code, body := get(t, srv, "/mq/api/schedules?queue="); code != http.StatusBadRequest {
		t.Errorf("no queue: %d %s", code, body)
	}
}

// TestBrowserSchedules: the page shows the selected queue's schedules in
// a table of their own, with no console error.
func TestBrowserSchedules(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	errs := consoleErrors(ctx)
	c, _ := newClient(t)
	bg := context.Background()
	if _, err := c.Enqueue(bg, "reports", "x", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Inspector().SetSchedule(bg, "reports", mq.Schedule{Name: "<b>nightly</b>", Cron: "0 3 * * *", Message: "go"}); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, c, Options{Interval: 200 * time.Millisecond})
	do(t, ctx, "load", chromedp.Navigate(srv.URL+"/mq/#q=reports"))
	row := poll[[]string](t, ctx, "the schedules table", `(() => {
		const tr = document.querySelector('#schedules tr[data-schedule]');
		if (!tr) return null;
		return [...tr.querySelectorAll('td')].map((td) => td.textContent);
	})()`)
	if len(row) != 6 || row[0] != "<b>nightly</b>" || row[1] != "0 3 * * *" || row[2] != "UTC" || row[4] != "no" {
		t.Errorf("the row shows %q", row)
	}
	if e := errs(); len(e) > 0 {
		t.Errorf("console errors: %v", e)
	}
}

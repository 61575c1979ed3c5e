package mqprom

import (
	"context"
	"time"

	"github.com/gocarmine/mq"
	"github.com/prometheus/client_golang/prometheus"
)

// historySums are a queue's handlings by kind (processed, failed, dead)
// in its last whole minute and its last 60 whole minutes, from its
// history in Redis (mq.Inspector.History).
type historySums struct {
	minute, hour [3]int64
}

// historyKinds are the kind labels, in the order of historySums' arrays.
var historyKinds = [3]string{"processed", "failed", "dead"}

// readHistory reads the sums of queue's history. It asks for two hours by
// the local clock, so that a skew of up to an hour from the server's
// still covers the last 61 minutes by the server's clock, of which the
// last, still running, is left out.
func readHistory(ctx context.Context, client *mq.Client, queue string) (historySums, error) {
	h, err := client.Inspector().History(ctx, queue, time.Now().Add(-2*time.Hour))
	if err != nil {
		return historySums{}, err
	}
	var s historySums
	if len(h) < 2 {
		return s, nil
	}
	whole := h[:len(h)-1]
	add := func(sums *[3]int64, m mq.HistoryMinute) {
		sums[0] += m.Processed
		sums[1] += m.Failed
		sums[2] += m.Dead
	}
	add(&s.minute, whole[len(whole)-1])
	for _, m := range whole[max(0, len(whole)-60):] {
		add(&s.hour, m)
	}
	return s, nil
}

// collectHistory sends queue's history sums.
func (c *QueueCollector) collectHistory(ch chan<- prometheus.Metric, queue string, s historySums) {
	for i, kind := range historyKinds {
		ch <- prometheus.MustNewConstMetric(c.lastMinute, prometheus.GaugeValue, float64(s.minute[i]), queue, kind)
		ch <- prometheus.MustNewConstMetric(c.lastHour, prometheus.GaugeValue, float64(s.hour[i]), queue, kind)
	}
}

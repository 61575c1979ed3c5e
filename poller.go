package mq

import (
	"context"

	"github.com/gocarmine/mq/internal/protocol"
)

// poller makes the poll calls of one polling loop, or of a worker's
// flusher, one at a time, and keeps what recovering from a lost reply
// needs: the calls are numbered, and the outcomes that calls without a
// reply carried are sent again, first, by the next call, which learns from
// the poller's receipt in Redis what those calls applied (dequeue.lua). So a
// reply lost on the way back, or a call go-redis sends twice, never
// records an outcome twice, never counts an outcome as lost when it was
// recorded, and never leaves the messages it handed out locked.
//
// A poller is used by one goroutine at a time.
type poller struct {
	send pollFunc
	id   string // the poller's receipt id

	seq       uint64           // the number of the last call made
	confirmed uint64           // the number of the last call whose reply came
	inDoubt   []pendingOutcome // outcomes of the calls after confirmed, in order
}

// pollFunc makes one poll call of a queue: Client.pollCall, or a fake in
// tests.
type pollFunc func(ctx context.Context, a protocol.PollArgs) (protocol.PollReply, error)

func newPoller(send pollFunc) *poller {
	return &poller{send: send, id: randomID()}
}

// call sends the outcomes in doubt and then fresh, and polls as a says
// (a.Completions is set here). On success it answers the reply and the
// outcomes it resolved, in the order of reply.Recorded. On error all of
// them stay in doubt, to be sent by the next call.
func (p *poller) call(ctx context.Context, a protocol.PollArgs, fresh []pendingOutcome) (protocol.PollReply, []pendingOutcome, error) {
	sent := append(p.inDoubt, fresh...)
	a.Completions = make([]protocol.Completion, len(sent))
	for i, o := range sent {
		a.Completions[i] = o.Completion
	}
	p.seq++
	a.Poller, a.Seq, a.Confirmed = p.id, p.seq, p.confirmed
	r, err := p.send(ctx, a)
	if err != nil {
		p.inDoubt = sent
		return r, nil, err
	}
	p.confirmed, p.inDoubt = p.seq, nil
	return r, sent, nil
}

// settled tells whether every call of the poller has had its reply: if
// not, the last one may have applied, and only another call can tell.
func (p *poller) settled() bool { return p.confirmed == p.seq }

// room is how many fresh outcomes the next call may carry.
func (p *poller) room() int { return max(0, maxOutcomesPerCall-len(p.inDoubt)) }

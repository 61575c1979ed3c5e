package mq

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// subscriptionPing is how long the client's subscription may stay silent
// before it is checked with a PING (a broken connection is then made
// again).
const subscriptionPing = 3 * time.Second

// pubSub is the client's one Pub/Sub connection: the cancel watch of
// its workers (cancel.go, docs/protocol.md §20) and its waits for results
// (results_hub.go, §21) join their channels on it. It opens with the first
// channel joined and closes once the last is left. After an error go-redis
// makes the connection again and subscribes to every channel anew; a
// connection silent for subscriptionPing is sent a PING, and one that stays
// silent as long again is replaced.
type pubSub struct {
	rdb redis.UniversalClient

	mu       sync.Mutex
	ps       *redis.PubSub // nil while no channel is joined
	stop     context.CancelFunc
	channels map[string]*subChannel
	closed   bool // the client was closed
}

// subChannel is one channel of the subscription: who listens to it, and
// how many times it joined.
type subChannel struct {
	l     subListener
	joins int
}

// subListener hears the channels it joined. Its methods are called from
// the subscription's loop, without the subscription's lock held.
type subListener interface {
	// message is a message published on channel.
	message(channel, payload string)
	// confirmed tells that the subscription to channel is confirmed
	// (again, after a broken connection).
	confirmed(channel string)
	// broken tells that the connection broke: messages may have been
	// lost, and each channel is confirmed anew once subscribed again.
	broken()
}

func newPubSub(rdb redis.UniversalClient) *pubSub {
	return &pubSub{rdb: rdb, channels: map[string]*subChannel{}}
}

// join subscribes l to channel (a channel joined already is only counted:
// it keeps its first listener). An error from Redis leaves the channel
// joined all the same: go-redis subscribes to it when it makes the
// connection again. The caller leaves as many times as it joined.
func (s *pubSub) join(ctx context.Context, channel string, l subListener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClientClosed
	}
	if ch := s.channels[channel]; ch != nil {
		ch.joins++
		return nil
	}
	s.channels[channel] = &subChannel{l: l, joins: 1}
	if s.ps == nil {
		s.ps = s.rdb.Subscribe(context.WithoutCancel(ctx)) // no channel yet: no call
		loopCtx, stop := context.WithCancel(context.Background())
		s.stop = stop
		go s.loop(loopCtx, s.ps)
	}
	return s.ps.Subscribe(ctx, channel)
}

// leave undoes one join of channel.
func (s *pubSub) leave(channel string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.channels[channel]
	if ch == nil {
		return
	}
	if ch.joins--; ch.joins > 0 {
		return
	}
	delete(s.channels, channel)
	switch {
	case s.ps == nil:
	case len(s.channels) == 0:
		s.shut()
	default:
		// (an error here leaves a channel nobody hears: harmless)
		_ = s.ps.Unsubscribe(context.Background(), channel)
	}
}

// shut closes the connection. The caller holds s.mu.
func (s *pubSub) shut() {
	if s.ps == nil {
		return
	}
	s.stop()
	_ = s.ps.Close()
	s.ps, s.stop = nil, nil
}

// close closes the subscription for good (Client.Close).
func (s *pubSub) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.shut()
	clear(s.channels)
}

// listener answers the listener of channel, nil for none.
func (s *pubSub) listener(channel string) subListener {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch := s.channels[channel]; ch != nil {
		return ch.l
	}
	return nil
}

// loop reads ps until ctx ends: confirmations, messages and errors, each
// handed to the listener of its channel (an error to every listener).
func (s *pubSub) loop(ctx context.Context, ps *redis.PubSub) {
	pause := 10 * time.Millisecond
	pinged := false
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, subscriptionPing)
		if err != nil && isTimeout(err) {
			if pinged {
				if ps = s.replace(ctx, ps); ps == nil {
					return
				}
				pinged = false
				continue
			}
			pinged = true
			err = ps.Ping(ctx)
		} else {
			pinged = false
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.broken()
			select { // Redis may be down: do not spin
			case <-ctx.Done():
				return
			case <-time.After(pause):
			}
			pause = min(2*pause, time.Second)
			continue
		}
		pause = 10 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			if l := s.listener(m.Channel); l != nil {
				l.confirmed(m.Channel)
			}
		case *redis.Message:
			if l := s.listener(m.Channel); l != nil {
				l.message(m.Channel, m.Payload)
			}
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// replace replaces ps, which did not answer a PING, by a new subscription
// to the same channels, tells every listener, and answers it (nil when the
// subscription moved on meanwhile: closed, or opened anew).
func (s *pubSub) replace(ctx context.Context, ps *redis.PubSub) *redis.PubSub {
	s.mu.Lock()
	if s.ps != ps {
		s.mu.Unlock()
		return nil
	}
	_ = ps.Close()
	channels := make([]string, 0, len(s.channels))
	for name := range s.channels {
		channels = append(channels, name)
	}
	s.ps = s.rdb.Subscribe(ctx, channels...)
	ps = s.ps
	s.mu.Unlock()
	s.broken()
	return ps
}

// broken tells every listener that the connection broke.
func (s *pubSub) broken() {
	s.mu.Lock()
	var ls []subListener
	for _, ch := range s.channels {
		if !slices.Contains(ls, ch.l) {
			ls = append(ls, ch.l)
		}
	}
	s.mu.Unlock()
	for _, l := range ls {
		l.broken()
	}
}

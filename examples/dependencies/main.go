// Command dependencies shows a handler that holds its dependencies (a user
// store and a mailer, say), built once and shared by every handling: a
// struct whose fields are its dependencies, as an http.Handler's often are,
// so that tests hand it fakes.
//
//	go run ./examples/dependencies
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gocarmine/mq"
	"github.com/redis/go-redis/v9"
)

// WelcomeEmail is the message: who to greet.
type WelcomeEmail struct {
	UserID string
	Body   string
}

// UserStore finds users; a database in a real service.
type UserStore interface {
	Email(ctx context.Context, userID string) (string, error)
}

// Mailer sends mail; an SMTP or API client in a real service.
type Mailer interface {
	Send(ctx context.Context, to, body string) error
}

// WelcomeHandler sends welcome emails. Its fields are its dependencies; it
// is safe for concurrent use when they are.
type WelcomeHandler struct {
	Users  UserStore
	Mailer Mailer
}

// Handle implements mq.Handler.
func (h *WelcomeHandler) Handle(ctx context.Context, m *mq.Message) error {
	var msg WelcomeEmail
	if err := m.Decode(&msg); err != nil {
		return err // undecodable: an error outcome, logged with the message id
	}
	to, err := h.Users.Email(ctx, msg.UserID)
	if errors.Is(err, errNoSuchUser) {
		return mq.Final(err) // permanent: a dead letter at once, no retry
	}
	if err != nil {
		return mq.Retry(time.Second) // transient: try again later
	}
	return h.Mailer.Send(ctx, to, msg.Body)
}

var errNoSuchUser = errors.New("no such user")

type mapUsers map[string]string

func (u mapUsers) Email(_ context.Context, id string) (string, error) {
	if e, ok := u[id]; ok {
		return e, nil
	}
	return "", errNoSuchUser
}

type printMailer struct {
	mu   sync.Mutex
	sent chan<- string
}

func (p *printMailer) Send(_ context.Context, to, body string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent <- fmt.Sprintf("mail to %s: %s", to, body)
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := mainErr(ctx, "examples:welcome", slog.LevelError+1); err != nil {
		log.Fatal(err)
	}
}

// mainErr connects to REDIS_URL, or to an embedded miniredis when it is
// unset, and runs the example on queue, emptied before and after.
func mainErr(ctx context.Context, queue string, level slog.Level) error {
	var rdb *redis.Client
	if url := os.Getenv("REDIS_URL"); url != "" {
		opts, err := redis.ParseURL(url)
		if err != nil {
			return fmt.Errorf("REDIS_URL: %w", err)
		}
		rdb = redis.NewClient(opts)
		fmt.Println("Redis:", opts.Addr)
	} else {
		m, err := miniredis.Run()
		if err != nil {
			return err
		}
		defer m.Close()
		rdb = redis.NewClient(&redis.Options{Addr: m.Addr()})
		fmt.Println("Redis: embedded miniredis (set REDIS_URL to use a real Redis)")
	}
	defer rdb.Close()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	client, err := mq.New(rdb, &mq.Config{Logger: logger})
	if err != nil {
		return err
	}
	if _, err := client.Inspector().ClearQueues(ctx, queue); err != nil {
		return err
	}
	if err := run(ctx, client, queue); err != nil {
		return err
	}
	_, err = client.Inspector().ClearQueues(ctx, queue)
	return err
}

func run(ctx context.Context, client *mq.Client, queue string) error {

	sent := make(chan string)
	handler := &WelcomeHandler{
		Users:  mapUsers{"u1": "ada@example.com", "u2": "bob@example.com"},
		Mailer: &printMailer{sent: sent},
	}
	worker, err := client.NewWorker(queue, &mq.WorkerConfig{Handler: handler, HandlerThreads: 4})
	if err != nil {
		return err
	}
	handled, unsubscribe := worker.Subscribe(mq.EventHandled)
	defer unsubscribe()
	if err := worker.Start(ctx); err != nil {
		return err
	}
	for _, id := range []string{"u1", "u2", "u404"} {
		if _, err := client.Enqueue(ctx, queue, WelcomeEmail{UserID: id, Body: "welcome aboard"}, nil); err != nil {
			return err
		}
	}
	for range 2 {
		select {
		case s := <-sent:
			fmt.Println(s)
		case <-time.After(30 * time.Second):
			return errors.New("timed out")
		}
	}
	// Wait until all three have an outcome: two sent, one dead letter.
	for n := 0; n < 3; {
		select {
		case <-handled:
			n++
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := worker.Stop(stopCtx); err != nil {
		return err
	}
	counts := worker.Stats().Counts
	fmt.Printf("succeeded=%d dead=%d (u404 has no email)\n", counts.Succeeded, counts.Dead)
	return nil
}

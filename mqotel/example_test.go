package mqotel_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/alicebob/miniredis/v2"
	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/mqotel"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// Example traces a message from the request that enqueued it to its
// handling. It runs on an embedded miniredis and keeps its spans in
// memory; a service passes its own Redis client and exporter, and sets
// the providers and propagator globally (otel.SetTracerProvider,
// otel.SetTextMapPropagator) instead of passing options.
func Example() {
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	client, err := mq.New(rdb, &mq.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	opts := []mqotel.Option{mqotel.WithTracerProvider(tp), mqotel.WithPropagator(propagation.TraceContext{})}
	ctx := context.Background()

	// The producer side, in a request's span.
	producer := mqotel.NewProducer(client, opts...)
	reqCtx, request := tp.Tracer("example").Start(ctx, "POST /signup")
	if _, err := producer.Enqueue(reqCtx, "emails", "welcome ada", &mq.EnqueueOptions{MessageID: "welcome-ada"}); err != nil {
		panic(err)
	}
	request.End()

	// The consumer side: the handler runs in a span of its own.
	done := make(chan struct{})
	w, err := client.StartWorker(ctx, "emails", &mq.WorkerConfig{
		Handler: mqotel.Handler(mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			var text string
			if err := m.Decode(&text); err != nil {
				return err
			}
			fmt.Println("handled:", text)
			close(done)
			return nil
		}), opts...),
	})
	if err != nil {
		panic(err)
	}
	<-done
	if err := w.Stop(ctx); err != nil {
		panic(err)
	}

	names := map[string]string{} // span id -> name
	for _, s := range exp.GetSpans() {
		names[s.SpanContext.SpanID().String()] = s.Name
	}
	for _, s := range exp.GetSpans() {
		fmt.Printf("%s (%s), parent %q, same trace: %v\n", s.Name, s.SpanKind,
			names[s.Parent.SpanID().String()], s.SpanContext.TraceID() == request.SpanContext().TraceID())
	}
	// Output:
	// handled: welcome ada
	// send emails (producer), parent "POST /signup", same trace: true
	// POST /signup (internal), parent "", same trace: true
	// process emails (consumer), parent "send emails", same trace: true
}

package dashboard_test

import (
	"log"
	"net/http"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/dashboard"
	"github.com/redis/go-redis/v9"
)

// A service mounts the dashboard under /mq/, read-only. Put your own
// authentication in front of it; set AllowActions for the pause, resume
// and delete buttons and those of the dead letters.
func ExampleNew() {
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	client, err := mq.New(rdb, nil)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/mq/", http.StripPrefix("/mq", dashboard.New(client, dashboard.Options{})))
	_ = http.ListenAndServe("localhost:8080", mux) // then open http://localhost:8080/mq/
}

package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gocarmine/mq"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"
)

// defaultURL is the Redis mqctl talks to when neither --url nor REDIS_URL
// says otherwise.
const defaultURL = "redis://127.0.0.1:6379/0"

// connFlags are the global flags that say where Redis is and how to talk
// to it, and the library's Config options that matter to an operator.
type connFlags struct {
	url              string
	cluster          []string
	sentinel         []string
	master           string
	db               int
	user             string
	password         string
	sentinelUser     string
	sentinelPassword string

	tls           bool
	tlsCA         string
	tlsCert       string
	tlsKey        string
	tlsServerName string
	tlsInsecure   bool

	clusterKeys    bool
	maxMessageSize int
	timeout        time.Duration

	// urlDefaulted says that neither --url nor a non-empty REDIS_URL chose
	// the Redis, so that mqctl says it talks to defaultURL.
	urlDefaulted bool
}

// register defines the flags on fs.
func (f *connFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.url, "url", defaultURL, "Redis URL (redis:// or rediss:// for TLS), for a single Redis; env REDIS_URL")
	fs.StringSliceVar(&f.cluster, "cluster", nil, "Redis Cluster node addresses `ADDR,...` (implies --cluster-keys)")
	fs.StringSliceVar(&f.sentinel, "sentinel", nil, "Sentinel addresses `ADDR,...` (with --master)")
	fs.StringVar(&f.master, "master", "", "the master `NAME` the sentinels monitor")
	fs.IntVar(&f.db, "db", -1, "database number (default: the URL's, or 0)")
	fs.StringVar(&f.user, "user", "", "ACL user name (overrides the URL's)")
	fs.StringVar(&f.password, "password", "", "password (overrides the URL's; prefer env MQCTL_PASSWORD)")
	fs.StringVar(&f.sentinelUser, "sentinel-user", "", "ACL user name for the sentinels")
	fs.StringVar(&f.sentinelPassword, "sentinel-password", "", "password for the sentinels")
	fs.BoolVar(&f.tls, "tls", false, "use TLS (implied by rediss:// and by the other --tls-* flags)")
	fs.StringVar(&f.tlsCA, "tls-ca", "", "PEM `FILE` of the CA certificates to trust (default: the system's)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM `FILE` of a client certificate (with --tls-key)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM `FILE` of the client certificate's key")
	fs.StringVar(&f.tlsServerName, "tls-server-name", "", "server name to verify the certificate against (default: the host)")
	fs.BoolVar(&f.tlsInsecure, "tls-insecure", false, "do not verify the server's certificate (testing only)")
	fs.BoolVar(&f.clusterKeys, "cluster-keys", false, "queues use the cluster key layout carmine:mq:{Q}: (mq.Config.Cluster)")
	fs.IntVar(&f.maxMessageSize, "max-message-size", 0, "largest encoded message enqueue accepts, in bytes (default 512 MiB)")
	fs.DurationVar(&f.timeout, "timeout", defaultTimeout, "give up a command after this long (0: never)")
}

// open makes the Redis client the flags describe and the library's Config
// for it. Nothing is dialled yet.
func (f *connFlags) open(logTo io.Writer) (redis.UniversalClient, *mq.Config, error) {
	cfg := &mq.Config{
		Cluster:        f.clusterKeys || len(f.cluster) > 0,
		MaxMessageSize: f.maxMessageSize,
		Logger:         slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	switch {
	case len(f.cluster) > 0 && len(f.sentinel) > 0:
		return nil, nil, usageErrorf("--cluster and --sentinel exclude each other")
	case len(f.sentinel) > 0 && f.master == "":
		return nil, nil, usageErrorf("--sentinel needs --master NAME")
	case f.master != "" && len(f.sentinel) == 0:
		return nil, nil, usageErrorf("--master needs --sentinel ADDR,...")
	case len(f.cluster) > 0 && f.db > 0:
		return nil, nil, usageErrorf("--db: a Redis Cluster has database 0 only")
	case f.maxMessageSize < 0:
		return nil, nil, usageErrorf("--max-message-size must not be negative")
	}
	tlsConfig, err := f.tlsConfig()
	if err != nil {
		return nil, nil, err
	}

	switch {
	case len(f.cluster) > 0:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:     f.cluster,
			Username:  f.user,
			Password:  f.password,
			TLSConfig: tlsConfig,
		}), cfg, nil
	case len(f.sentinel) > 0:
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:       f.master,
			SentinelAddrs:    f.sentinel,
			SentinelUsername: f.sentinelUser,
			SentinelPassword: f.sentinelPassword,
			Username:         f.user,
			Password:         f.password,
			DB:               max(f.db, 0),
			TLSConfig:        tlsConfig,
		}), cfg, nil
	}

	opts, err := redis.ParseURL(f.url)
	if err != nil {
		return nil, nil, usageErrorf("Redis URL %q: %v", f.url, err)
	}
	if f.user != "" {
		opts.Username = f.user
	}
	if f.password != "" {
		opts.Password = f.password
	}
	if f.db >= 0 {
		opts.DB = f.db
	}
	if tlsConfig != nil {
		if opts.TLSConfig != nil && tlsConfig.ServerName == "" {
			tlsConfig.ServerName = opts.TLSConfig.ServerName
		}
		opts.TLSConfig = tlsConfig
	}
	return redis.NewClient(opts), cfg, nil
}

// server names the Redis the flags point at, without its password: a
// Redis URL, the nodes of a Redis Cluster, or a Sentinel master and its
// sentinels; and says so when it is the default, which no setting chose.
func (f *connFlags) server() string {
	switch {
	case len(f.cluster) > 0:
		return "Redis Cluster " + strings.Join(f.cluster, ",")
	case len(f.sentinel) > 0:
		return fmt.Sprintf("Sentinel master %q via %s", f.master, strings.Join(f.sentinel, ","))
	}
	name := f.url
	if opts, err := redis.ParseURL(f.url); err == nil {
		scheme := "redis"
		if opts.TLSConfig != nil || f.tls || f.tlsCA != "" || f.tlsCert != "" || f.tlsServerName != "" || f.tlsInsecure {
			scheme = "rediss"
		}
		user := opts.Username
		if f.user != "" {
			user = f.user
		}
		if user != "" {
			user += "@"
		}
		db := opts.DB
		if f.db >= 0 {
			db = f.db
		}
		name = fmt.Sprintf("%s://%s%s/%d", scheme, user, opts.Addr, db)
	} else if u, err := url.Parse(f.url); err == nil {
		name = u.Redacted()
	}
	if f.urlDefaulted {
		name += " (the default: neither --url nor REDIS_URL is set)"
	}
	return name
}

// tlsConfig is the TLS configuration the --tls flags ask for, or nil.
func (f *connFlags) tlsConfig() (*tls.Config, error) {
	if !f.tls && f.tlsCA == "" && f.tlsCert == "" && f.tlsKey == "" && f.tlsServerName == "" && !f.tlsInsecure {
		return nil, nil
	}
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         f.tlsServerName,
		InsecureSkipVerify: f.tlsInsecure, //nolint:gosec // asked for by --tls-insecure
	}
	if f.tlsCA != "" {
		pem, err := os.ReadFile(f.tlsCA)
		if err != nil {
			return nil, usageErrorf("--tls-ca: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usageErrorf("--tls-ca: no PEM certificate in %s", f.tlsCA)
		}
		c.RootCAs = pool
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return nil, usageErrorf("--tls-cert and --tls-key go together")
	}
	if f.tlsCert != "" {
		pair, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return nil, usageErrorf("--tls-cert/--tls-key: %v", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

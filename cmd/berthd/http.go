package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"
)

// defaultHTTP is where berthd serves metrics and health unless told
// otherwise: loopback only, on the port Prometheus exporters commonly use.
const defaultHTTP = "127.0.0.1:9464"

// errNotLoopback is returned for an --http address that is not loopback.
var errNotLoopback = errors.New("not a loopback address")

// checkLoopback refuses an address whose host is not a loopback IP or
// "localhost": metrics and health are for the node itself.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--http %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--http %q: %w", addr, errNotLoopback)
	}
	return nil
}

// startHTTP listens on addr and serves h until the returned stop is
// called; stop waits for the server's goroutine to end.
func startHTTP(addr string, h http.Handler, log zerolog.Logger) (stop func(), err error) {
	if err := checkLoopback(addr); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--http: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("metrics and health listener")
		}
	}()
	log.Info().Str("addr", ln.Addr().String()).Msg("serving /metrics, /healthz and /readyz")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}

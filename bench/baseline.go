package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/privyhq/privy/api"
)

// baselineCommand serves the plain baseline: a net/http server on a unix
// socket that answers every secret read with a fixed reply of the same
// shape and size as privy's, without authentication, store, encryption or
// audit. Driven by the same clients as privy, it shows what HTTP over the
// socket alone costs on this machine: the ceiling privy's reads can reach
// here, however fast its own work becomes.
func baselineCommand(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench baseline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", "", "unix socket to listen on (required)")
	size := fs.Int("size", 1024, "value size in bytes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *socket == "" {
		return errors.New("bench baseline: -socket is required")
	}
	value := make([]byte, *size)
	rand.Read(value)
	status, err := json.Marshal(api.Status{Version: "baseline", Store: "none"})
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		reply(w, status)
	})
	mux.HandleFunc("GET /v1/secrets/{path...}", func(w http.ResponseWriter, r *http.Request) {
		// Encoded per request, as privy does, from the path asked for.
		b, err := json.Marshal(api.Secret{
			SecretMeta: api.SecretMeta{Path: r.PathValue("path"), Version: 1, Created: time.Now()},
			Value:      value,
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		reply(w, b)
	})
	os.Remove(*socket)
	ln, err := net.Listen("unix", *socket)
	if err != nil {
		return fmt.Errorf("bench baseline: %w", err)
	}
	defer os.Remove(*socket)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return hs.Shutdown(sctx)
}

// reply writes a JSON body with the headers privy sends.
func reply(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Request-Id", strings.Repeat("0", 16))
	w.WriteHeader(http.StatusOK)
	w.Write(append(body, '\n'))
}

package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/client"
	"github.com/privyhq/privy/internal/audit"
	"github.com/privyhq/privy/internal/seal"
	"github.com/privyhq/privy/internal/server"
	"github.com/privyhq/privy/internal/store/memstore"
)

// startServer runs an in-memory privy server on a unix socket, as
// `privy server --dev` does, and returns its socket and root token.
func startServer(ctx context.Context) (socket, root string, stop func()) {
	dir, err := os.MkdirTemp("", "privy-example-")
	if err != nil {
		log.Fatal(err)
	}
	st := memstore.New()
	raw, _ := seal.GenerateKey()
	root, err = server.Init(ctx, st, server.InitOptions{RawKey: raw})
	if err != nil {
		log.Fatal(err)
	}
	key, _ := seal.NewKey(raw)
	alog, err := audit.Open(filepath.Join(dir, "audit.log"))
	if err != nil {
		log.Fatal(err)
	}
	srv, err := server.New(ctx, server.Config{Store: st, Audit: alog, Key: key})
	if err != nil {
		log.Fatal(err)
	}
	socket = filepath.Join(dir, "privy.sock")
	ln, err := server.ListenUnix(socket)
	if err != nil {
		log.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { srv.Serve(sctx, ln); close(done) }()
	return socket, root, func() {
		cancel()
		<-done
		alog.Close()
		os.RemoveAll(dir)
	}
}

func Example() {
	ctx := context.Background()
	socket, root, stop := startServer(ctx)
	defer stop()

	admin, err := client.New(socket, client.WithToken(root))
	if err != nil {
		log.Fatal(err)
	}
	m, err := admin.PutSecret(ctx, "app/web/db-password", []byte("Tr0ub4dor&3"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored", m.Path, "version", m.Version)

	// A token that may only read app/web/**.
	t, err := admin.CreateToken(ctx, api.CreateTokenRequest{Rules: []string{"read:app/web/**"}, TTL: "1h"})
	if err != nil {
		log.Fatal(err)
	}
	web, _ := client.New(socket, client.WithToken(t.Token))
	s, err := web.GetSecret(ctx, "app/web/db-password", 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("read", len(s.Value), "bytes")

	_, err = web.PutSecret(ctx, "app/web/db-password", []byte("new"))
	fmt.Println("write allowed:", !errors.Is(err, client.ErrPermissionDenied))
	// Output:
	// stored app/web/db-password version 1
	// read 11 bytes
	// write allowed: false
}

func ExampleClient_GetSecret_notFound() {
	ctx := context.Background()
	socket, root, stop := startServer(ctx)
	defer stop()

	c, _ := client.New(socket, client.WithToken(root))
	_, err := c.GetSecret(ctx, "app/missing", 0)
	switch {
	case errors.Is(err, client.ErrNotFound):
		fmt.Println("no such secret")
	case err != nil:
		log.Fatal(err)
	}
	// Output: no such secret
}

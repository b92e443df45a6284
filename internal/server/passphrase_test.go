package server

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/client"
	"github.com/privyhq/privy/internal/audit"
	"github.com/privyhq/privy/internal/seal"
	"github.com/privyhq/privy/internal/store"
	"github.com/privyhq/privy/internal/store/memstore"
)

// cheapKDF returns Argon2id parameters far below the defaults, so that
// passphrase tests cost milliseconds; Init always uses the defaults.
func cheapKDF(t *testing.T) seal.KDFParams {
	t.Helper()
	salt := make([]byte, 16)
	rand.Read(salt)
	return seal.KDFParams{Salt: salt, Time: 1, MemoryKiB: 64, Threads: 1}
}

func deriveKey(t *testing.T, pass string, p seal.KDFParams) *seal.Key {
	t.Helper()
	raw, err := seal.DeriveKey([]byte(pass), p)
	if err != nil {
		t.Fatal(err)
	}
	k, err := seal.NewKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func putKDF(t *testing.T, st store.Store, name string, p seal.KDFParams) {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutRecord(context.Background(), sysKind, name, b, store.AnyRevision); err != nil {
		t.Fatal(err)
	}
}

// passphraseStore is what Init with a passphrase makes, with cheap
// parameters.
func passphraseStore(t *testing.T, pass string) (store.Store, seal.KDFParams, string) {
	t.Helper()
	st := memstore.New()
	p := cheapKDF(t)
	putKDF(t, st, kdfKey, p)
	raw, err := seal.DeriveKey([]byte(pass), p)
	if err != nil {
		t.Fatal(err)
	}
	root, err := Init(context.Background(), st, InitOptions{RawKey: raw})
	if err != nil {
		t.Fatal(err)
	}
	return st, p, root
}

func TestUnsealPassphraseCheap(t *testing.T) {
	ctx := context.Background()
	st, _, root := passphraseStore(t, "first passphrase")
	alog, err := audit.Open(filepath.Join(t.TempDir(), "audit.log"), audit.WithSync(audit.SyncNone))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alog.Close() })
	srv, err := New(ctx, Config{Store: st, Audit: alog})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "privy-") // short: socket paths have a limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s")
	ln, err := ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	c, err := client.New(sock, client.WithToken(root))
	if err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name string
		req  api.UnsealRequest
		want error
	}{
		{"wrong passphrase", api.UnsealRequest{Passphrase: "second passphrase"}, client.ErrPermissionDenied},
		{"key of another store", api.UnsealRequest{Key: seal.EncodeKey(make([]byte, 32))}, client.ErrPermissionDenied},
	} {
		_, err := c.Unseal(ctx, tt.req)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
		if !srv.Sealed() {
			t.Errorf("%s: the server unsealed", tt.name)
		}
	}
	if _, err := c.Unseal(ctx, api.UnsealRequest{Passphrase: "first passphrase"}); err != nil {
		t.Fatalf("Unseal: %v", err)
	}
	if srv.Sealed() {
		t.Error("still sealed after the right passphrase")
	}
	if _, err := c.PutSecret(ctx, "app/x", []byte("v")); err != nil {
		t.Errorf("PutSecret after unseal: %v", err)
	}
}

// TestKeyFromPassphraseInterruptedRotation covers a crash during a rotation
// to a new passphrase: the new parameters are stored as kdf.next before the
// rewrap, so whichever key the store is under, its passphrase unseals it.
func TestKeyFromPassphraseInterruptedRotation(t *testing.T) {
	ctx := context.Background()
	for _, rewrapped := range []bool{false, true} {
		st, p1, _ := passphraseStore(t, "old passphrase")
		old := deriveKey(t, "old passphrase", p1)
		if _, err := st.Put(ctx, "app/x", store.PutOptions{}, func(v int) ([]byte, error) {
			return old.Seal("app/x", v, []byte("value"))
		}); err != nil {
			t.Fatal(err)
		}
		p2 := cheapKDF(t)
		putKDF(t, st, kdfNextKey, p2)
		next := deriveKey(t, "new passphrase", p2)
		want, wrong := old, "new passphrase"
		if rewrapped {
			if _, err := rewrapAll(ctx, st, old, next); err != nil {
				t.Fatal(err)
			}
			want, wrong = next, "old passphrase"
		}
		right := map[bool]string{false: "old passphrase", true: "new passphrase"}[rewrapped]
		k, err := KeyFromPassphrase(ctx, st, []byte(right))
		if err != nil || k.ID() != want.ID() {
			t.Errorf("rewrapped=%v: KeyFromPassphrase(%q) = %v, %v; want key %s", rewrapped, right, k, err, want.ID())
		}
		if _, err := KeyFromPassphrase(ctx, st, []byte(wrong)); !errors.Is(err, seal.ErrWrongKey) {
			t.Errorf("rewrapped=%v: KeyFromPassphrase(%q) = %v, want ErrWrongKey", rewrapped, wrong, err)
		}
	}

	if _, err := KeyFromPassphrase(ctx, memstore.New(), []byte("x")); !errors.Is(err, errNoKDF) {
		t.Errorf("store without passphrase: got %v, want errNoKDF", err)
	}
}

package server_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/client"
	"github.com/privyhq/privy/internal/audit"
	"github.com/privyhq/privy/internal/seal"
	"github.com/privyhq/privy/internal/server"
	"github.com/privyhq/privy/internal/store/memstore"
)

func TestStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{keyFile: true, maxVersions: 7})
	st, err := e.client("").Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := api.Status{Version: server.Version, Store: "memory", KeySource: "file", Started: e.clock.Now(),
		MaxValueSize: server.DefaultMaxValueSize, MaxVersions: 7}
	if !st.Started.Equal(want.Started) {
		t.Errorf("started = %v, want %v", st.Started, want.Started)
	}
	st.Started = want.Started
	if *st != want {
		t.Errorf("Status = %+v, want %+v", *st, want)
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	alog, err := audit.Open(filepath.Join(shortDir(t), "audit.log"), audit.WithSync(audit.SyncNone))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alog.Close() })
	newKey := func() (*seal.Key, []byte) {
		raw, err := seal.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		k, err := seal.NewKey(raw)
		if err != nil {
			t.Fatal(err)
		}
		return k, raw
	}
	k, raw := newKey()
	other, _ := newKey()
	initialised := memstore.New()
	if _, err := server.Init(ctx, initialised, server.InitOptions{RawKey: raw}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  server.Config
		want error // nil: any error
	}{
		{"no store", server.Config{Audit: alog}, nil},
		{"no audit", server.Config{Store: initialised}, nil},
		{"value size too big", server.Config{Store: initialised, Audit: alog, MaxValueSize: server.MaxMaxValueSize + 1}, nil},
		{"negative value size", server.Config{Store: initialised, Audit: alog, MaxValueSize: -1}, nil},
		{"negative versions", server.Config{Store: initialised, Audit: alog, MaxVersions: -1}, nil},
		{"not initialised", server.Config{Store: memstore.New(), Audit: alog, Key: k}, server.ErrNotInitialized},
		{"wrong key", server.Config{Store: initialised, Audit: alog, Key: other}, seal.ErrWrongKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := server.New(ctx, tt.cfg)
			if err == nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("New: got %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := server.New(ctx, server.Config{Store: initialised, Audit: alog, Key: k}); err != nil {
		t.Errorf("New with the right key: %v", err)
	}
	if _, err := server.Init(ctx, initialised, server.InitOptions{RawKey: raw}); !errors.Is(err, server.ErrAlreadyInitialized) {
		t.Errorf("Init twice: got %v, want ErrAlreadyInitialized", err)
	}
	if _, err := server.Init(ctx, memstore.New(), server.InitOptions{}); err == nil {
		t.Error("Init without a key source: got no error")
	}
}

func TestSealed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{sealed: true})
	root := e.client(e.root)
	anon := e.client("")

	if st, err := anon.Status(ctx); err != nil || !st.Sealed {
		t.Fatalf("Status = %+v, %v; want sealed", st, err)
	}
	calls := map[string]func() error{
		"get":     func() error { _, err := root.GetSecret(ctx, "app/x", 0); return err },
		"put":     func() error { _, err := root.PutSecret(ctx, "app/x", e.value()); return err },
		"list":    func() error { _, err := root.ListSecrets(ctx, ""); return err },
		"history": func() error { _, err := root.History(ctx, "app/x"); return err },
		"hide":    func() error { return root.DeleteSecret(ctx, "app/x", false) },
		"rotate":  func() error { _, err := root.RotateMasterKey(ctx, api.RotateRequest{}); return err },
	}
	for name, call := range calls {
		ce := e.wantErr(t, name, call(), client.ErrSealed)
		if ce.Status != http.StatusServiceUnavailable || !strings.Contains(ce.Hint, "privy unseal") {
			t.Errorf("%s: got %d hint %q, want 503 and a hint to run `privy unseal`", name, ce.Status, ce.Hint)
		}
	}
	// Tokens are not sealed: an admin can still see who it is.
	if _, err := root.TokenSelf(ctx); err != nil {
		t.Errorf("TokenSelf while sealed: %v", err)
	}

	wrong, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	e.note(wrong, []byte(seal.EncodeKey(wrong)))
	bad := []struct {
		name string
		req  api.UnsealRequest
		want error
	}{
		{"wrong key", api.UnsealRequest{Key: seal.EncodeKey(wrong)}, client.ErrPermissionDenied},
		{"short key", api.UnsealRequest{Key: seal.EncodeKey(wrong[:16])}, client.ErrInvalid},
		{"not base64", api.UnsealRequest{Key: "not-a-key-at-all!"}, client.ErrInvalid},
		{"nothing", api.UnsealRequest{}, client.ErrInvalid},
		{"key and passphrase", api.UnsealRequest{Key: seal.EncodeKey(e.rawKey), Passphrase: "pass-word-1"}, client.ErrInvalid},
		{"passphrase for a key store", api.UnsealRequest{Passphrase: "pass-word-1"}, client.ErrInvalid},
	}
	for _, tt := range bad {
		_, err := anon.Unseal(ctx, tt.req)
		e.wantErr(t, tt.name, err, tt.want)
		if st, err := anon.Status(ctx); err != nil || !st.Sealed {
			t.Errorf("%s: Status = %+v, %v; want still sealed", tt.name, st, err)
		}
	}

	st, err := anon.Unseal(ctx, api.UnsealRequest{Key: seal.EncodeKey(e.rawKey)})
	if err != nil || st.Sealed {
		t.Fatalf("Unseal = %+v, %v; want unsealed", st, err)
	}
	if st, err := anon.Status(ctx); err != nil || st.Sealed || st.KeySource != "unseal" {
		t.Errorf("Status after unseal = %+v, %v; want unsealed by unseal", st, err)
	}
	v := e.value()
	e.put(t, root, "app/x", v)
	if got := e.get(t, root, "app/x", 0); !bytes.Equal(got.Value, v) {
		t.Errorf("after unseal: got %q, want %q", got.Value, v)
	}
}

// TestStatusDuringUnseal asks for the status while the server is being
// unsealed; the race detector checks that the two share no field unlocked.
func TestStatusDuringUnseal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{sealed: true})
	c := e.client("")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20 {
				if _, err := c.Status(ctx); err != nil {
					t.Errorf("Status: %v", err)
					return
				}
			}
		})
	}
	for range 20 {
		if _, err := c.Unseal(ctx, api.UnsealRequest{Key: seal.EncodeKey(e.rawKey)}); err != nil {
			t.Errorf("Unseal: %v", err)
			break
		}
	}
	wg.Wait()
	if st, err := c.Status(ctx); err != nil || st.Sealed || st.KeySource != "unseal" {
		t.Errorf("Status = %+v, %v; want unsealed by unseal", st, err)
	}
}

// TestUnsealPassphrase pays for the default Argon2id parameters twice: in
// Init and in the unseal. Wrong passphrases are tried in the package's own
// TestUnsealPassphraseCheap, with small parameters.
func TestUnsealPassphrase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := memstore.New()
	pass := []byte("correct horse battery staple")
	root, err := server.Init(ctx, st, server.InitOptions{Passphrase: pass})
	if err != nil {
		t.Fatal(err)
	}
	alog, err := audit.Open(filepath.Join(shortDir(t), "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alog.Close() })
	logs := &syncBuffer{}
	srv, err := server.New(ctx, server.Config{Store: st, Audit: alog, Logger: newLogger(logs)})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(shortDir(t), "p.sock")
	serve(t, srv, sock)
	c, err := client.New(sock, client.WithToken(root))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutSecret(ctx, "app/x", []byte("value-under-passphrase")); !errors.Is(err, client.ErrSealed) {
		t.Errorf("put before unseal: got %v, want ErrSealed", err)
	}
	if _, err := c.Unseal(ctx, api.UnsealRequest{Passphrase: string(pass)}); err != nil {
		t.Fatalf("Unseal: %v", err)
	}
	if s, err := c.Status(ctx); err != nil || s.Sealed || s.KeySource != "passphrase" {
		t.Errorf("Status = %+v, %v; want unsealed by passphrase", s, err)
	}
	if _, err := c.PutSecret(ctx, "app/x", []byte("value-under-passphrase")); err != nil {
		t.Fatal(err)
	}
	if s, err := c.GetSecret(ctx, "app/x", 0); err != nil || string(s.Value) != "value-under-passphrase" {
		t.Errorf("GetSecret = %v, %v", s, err)
	}
	for _, secret := range []string{string(pass), "value-under-passphrase", root} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the server log holds %q", secret)
		}
	}
}

func TestRotateMasterKeyFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{keyFile: true})
	root := e.client(e.root)
	values := map[string][][]byte{}
	for _, p := range []string{"app/a", "app/b", "app/hidden"} {
		for range 2 {
			v := e.value()
			e.put(t, root, p, v)
			values[p] = append(values[p], v)
		}
	}
	if err := root.DeleteSecret(ctx, "app/hidden", false); err != nil {
		t.Fatal(err)
	}
	oldFile, err := os.ReadFile(e.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	oldCopy := filepath.Join(e.dir, "old.key")
	if err := os.WriteFile(oldCopy, oldFile, 0o600); err != nil {
		t.Fatal(err)
	}

	res, err := root.RotateMasterKey(ctx, api.RotateRequest{})
	if err != nil {
		t.Fatalf("RotateMasterKey: %v", err)
	}
	if res.Rewrapped != 6 || res.KeyFile != e.keyFile || res.KeyID == "" {
		t.Errorf("RotateMasterKey = %+v, want 6 rewrapped into %s", res, e.keyFile)
	}
	newFile, err := os.ReadFile(e.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	e.note(bytes.TrimSpace(newFile))
	if bytes.Equal(newFile, oldFile) {
		t.Error("the key file did not change")
	}
	if _, err := os.Stat(e.keyFile + ".new"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the new key file is still beside the key file: %v", err)
	}
	if fi, err := os.Stat(e.keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %v, %v; want 0600", fi.Mode(), err)
	}

	// Every version, hidden ones included, opens under the new key.
	e.put(t, root, "app/hidden", e.value())
	for p, vs := range values {
		for i, v := range vs {
			if got := e.get(t, root, p, i+1); !bytes.Equal(got.Value, v) {
				t.Errorf("%s v%d: got %q, want %q", p, i+1, got.Value, v)
			}
		}
	}

	if _, err := server.OpenKeyFile(ctx, e.store, oldCopy); !errors.Is(err, seal.ErrWrongKey) {
		t.Errorf("OpenKeyFile(old key): got %v, want ErrWrongKey", err)
	}
	k, err := server.OpenKeyFile(ctx, e.store, e.keyFile)
	if err != nil {
		t.Fatalf("OpenKeyFile(new key): %v", err)
	}
	if k.ID() != res.KeyID {
		t.Errorf("key file holds key %s, rotation reported %s", k.ID(), res.KeyID)
	}

	// The audit line names the new key by id only.
	entries := e.auditEntries()
	var found bool
	for _, en := range entries {
		if en.Op == "sys.rotate-master-key" && en.Outcome == "ok" {
			found = en.Extra["key_id"] == res.KeyID
		}
	}
	if !found {
		t.Errorf("no audit line for the rotation with key_id %s", res.KeyID)
	}
}

func TestRotateMasterKeyGiven(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{}) // key from the environment: no file to write
	root := e.client(e.root)
	v := e.value()
	e.put(t, root, "app/a", v)

	_, err := root.RotateMasterKey(ctx, api.RotateRequest{})
	if ce := e.wantErr(t, "rotate without a new key", err, client.ErrInvalid); !strings.Contains(ce.Message, "env") {
		t.Errorf("got message %q, want it to say where the key came from", ce.Message)
	}
	_, err = root.RotateMasterKey(ctx, api.RotateRequest{NewKey: "short"})
	e.wantErr(t, "rotate to a bad key", err, client.ErrInvalid)

	raw, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	e.note(raw, []byte(seal.EncodeKey(raw)))
	res, err := root.RotateMasterKey(ctx, api.RotateRequest{NewKey: seal.EncodeKey(raw)})
	if err != nil {
		t.Fatal(err)
	}
	next, _ := seal.NewKey(raw)
	if res.KeyID != next.ID() || res.Rewrapped != 1 || res.KeyFile != "" {
		t.Errorf("RotateMasterKey = %+v, want key %s, 1 rewrapped, no file", res, next.ID())
	}
	if got := e.get(t, root, "app/a", 0); !bytes.Equal(got.Value, v) {
		t.Errorf("after rotation: got %q, want %q", got.Value, v)
	}
	old, _ := seal.NewKey(e.rawKey)
	alog, err := audit.Open(filepath.Join(shortDir(t), "audit.log"), audit.WithSync(audit.SyncNone))
	if err != nil {
		t.Fatal(err)
	}
	defer alog.Close()
	if _, err := server.New(ctx, server.Config{Store: e.store, Audit: alog, Key: old}); !errors.Is(err, seal.ErrWrongKey) {
		t.Errorf("New with the old key: got %v, want ErrWrongKey", err)
	}
	if _, err := server.New(ctx, server.Config{Store: e.store, Audit: alog, Key: next}); err != nil {
		t.Errorf("New with the new key: %v", err)
	}
}

// TestOpenKeyFileFinishesRotation starts from the states a crash during a
// rotation leaves: the new key beside the old one, with the store rewrapped
// or not yet.
func TestOpenKeyFileFinishesRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name      string
		rewrapped bool // the crash came after the rewrap, before the rename
	}{
		{"before the rewrap", false},
		{"after the rewrap", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{keyFile: true})
			root := e.client(e.root)
			values := map[string][]byte{"app/a": e.value(), "app/b": e.value()}
			for p, v := range values {
				e.put(t, root, p, v)
			}
			oldFile, err := os.ReadFile(e.keyFile)
			if err != nil {
				t.Fatal(err)
			}
			var newRaw []byte
			if tt.rewrapped {
				// Rotate for real, then put the files back as a crash
				// before the rename leaves them.
				if _, err := root.RotateMasterKey(ctx, api.RotateRequest{}); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(e.keyFile, e.keyFile+".new"); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(e.keyFile, oldFile, 0o600); err != nil {
					t.Fatal(err)
				}
				if newRaw, err = seal.ReadKeyFile(e.keyFile + ".new"); err != nil {
					t.Fatal(err)
				}
			} else {
				if newRaw, err = seal.GenerateKey(); err != nil {
					t.Fatal(err)
				}
				if err := seal.WriteKeyFile(e.keyFile+".new", newRaw); err != nil {
					t.Fatal(err)
				}
			}
			e.note(newRaw, []byte(seal.EncodeKey(newRaw)))
			want, _ := seal.NewKey(newRaw)

			k, err := server.OpenKeyFile(ctx, e.store, e.keyFile)
			if err != nil {
				t.Fatalf("OpenKeyFile: %v", err)
			}
			if k.ID() != want.ID() {
				t.Errorf("OpenKeyFile returned key %s, want the new key %s", k.ID(), want.ID())
			}
			if _, err := os.Stat(e.keyFile + ".new"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the new key file is still there: %v", err)
			}
			got, err := seal.ReadKeyFile(e.keyFile)
			if err != nil || !bytes.Equal(got, newRaw) {
				t.Errorf("the key file does not hold the new key (%v)", err)
			}
			for p, v := range values {
				ver, err := e.store.Get(ctx, p, 0)
				if err != nil {
					t.Fatal(err)
				}
				plain, err := k.Open(p, ver.Version, ver.Envelope)
				if err != nil || !bytes.Equal(plain, v) {
					t.Errorf("%s under the new key: got %q, %v; want %q", p, plain, err, v)
				}
			}
			// Done means done: opening again is a plain open.
			if k2, err := server.OpenKeyFile(ctx, e.store, e.keyFile); err != nil || k2.ID() != want.ID() {
				t.Errorf("second OpenKeyFile = %v, %v", k2, err)
			}
		})
	}

	t.Run("neither key fits", func(t *testing.T) {
		e := newEnv(t, envOptions{keyFile: true})
		other := filepath.Join(e.dir, "other.key")
		raw, _ := seal.GenerateKey()
		if err := seal.WriteKeyFile(other, raw); err != nil {
			t.Fatal(err)
		}
		raw2, _ := seal.GenerateKey()
		if err := seal.WriteKeyFile(other+".new", raw2); err != nil {
			t.Fatal(err)
		}
		if _, err := server.OpenKeyFile(ctx, e.store, other); !errors.Is(err, seal.ErrWrongKey) {
			t.Errorf("OpenKeyFile: got %v, want ErrWrongKey", err)
		}
		if _, err := os.Stat(other + ".new"); err != nil {
			t.Errorf("the unusable new key file was moved: %v", err)
		}
	})
}

package server

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/privyhq/privy/internal/audit"
	"github.com/privyhq/privy/internal/seal"
	"github.com/privyhq/privy/internal/store"
	"github.com/privyhq/privy/internal/store/memstore"
)

// brokenRewrap is a store whose Rewrap fails as a whole, as a full disk
// would make bbolt's one-transaction rewrap fail.
type brokenRewrap struct{ *memstore.Store }

func (brokenRewrap) Rewrap(context.Context, store.RewrapFunc) (int, error) {
	return 0, errors.New("write privy.db: no space left on device")
}

// A rotation whose rewrap fails leaves the old key in force and no
// KEYFILE.new that the next start would take for an interrupted rotation.
func TestRotateFailureLeavesNoNewKeyFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := brokenRewrap{memstore.New()}
	raw, _ := seal.GenerateKey()
	keyFile := filepath.Join(dir, "master.key")
	if err := seal.WriteKeyFile(keyFile, raw); err != nil {
		t.Fatal(err)
	}
	root, err := Init(ctx, st, InitOptions{RawKey: raw})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := seal.NewKey(raw)
	alog, err := audit.Open(filepath.Join(dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer alog.Close()
	srv, err := New(ctx, Config{Store: st, Audit: alog, Key: key, KeyFile: keyFile, KeySource: "file"})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/v1/sys/rotate-master-key", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+root)
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("got status %d, want 500: %s", rec.Code, rec.Body)
	}
	if _, err := os.Stat(keyFile + newKeySuffix); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s.new is left behind after a failed rotation (stat: %v)", keyFile, err)
	}
	if k, err := OpenKeyFile(ctx, st, keyFile); err != nil || k.ID() != key.ID() {
		t.Errorf("the old key no longer opens the store after a failed rotation: %v", err)
	}
}

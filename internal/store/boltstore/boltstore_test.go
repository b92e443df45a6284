package boltstore_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/privyhq/privy/internal/store"
	"github.com/privyhq/privy/internal/store/boltstore"
	"github.com/privyhq/privy/internal/store/storetest"
)

func open(t testing.TB, path string, opts ...boltstore.Option) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(path, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "privy.db"))
	})
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Store {
		return open(b, filepath.Join(b.TempDir(), "privy.db"))
	})
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "privy.db")
	s := open(t, path)
	seal := func(v int) ([]byte, error) { return []byte{byte(v), 0, 0xff}, nil }
	for range 3 {
		if _, err := s.Put(ctx, "app/db", store.PutOptions{}, seal); err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
	if _, err := s.Put(ctx, "app/hidden", store.PutOptions{}, seal); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if err := s.Hide(ctx, "app/hidden"); err != nil {
		t.Fatalf("Hide: %v", err)
	}
	rev, err := s.PutRecord(ctx, "token", "t1", []byte("meta"), 0)
	if err != nil {
		t.Fatalf("PutRecord: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t, path)
	defer s.Close()
	if got := s.Path(); got != path {
		t.Errorf("Path: got %q, want %q", got, path)
	}
	v, err := s.Get(ctx, "app/db", 2)
	if err != nil || string(v.Envelope) != "\x02\x00\xff" {
		t.Errorf("Get(app/db, 2) after reopening: got %q, %v; want %q", v.Envelope, err, "\x02\x00\xff")
	}
	list, err := s.List(ctx, "")
	if err != nil || len(list) != 1 || list[0].Path != "app/db" || list[0].Version != 3 {
		t.Errorf("List after reopening: got %+v, %v; want app/db at version 3", list, err)
	}
	vm, err := s.Put(ctx, "app/hidden", store.PutOptions{}, seal)
	if err != nil || vm.Version != 2 {
		t.Errorf("Put(app/hidden) after reopening: got version %d, %v; want 2", vm.Version, err)
	}
	r, err := s.GetRecord(ctx, "token", "t1")
	if err != nil || string(r.Value) != "meta" || r.Revision != rev {
		t.Errorf("GetRecord after reopening: got %+v, %v; want value meta revision %d", r, err, rev)
	}
	next, err := s.PutRecord(ctx, "token", "t2", nil, 0)
	if err != nil || next <= rev {
		t.Errorf("PutRecord after reopening: got revision %d, %v; want more than %d", next, err, rev)
	}
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "privy.db")
	s := open(t, path)
	defer s.Close()

	start := time.Now()
	s2, err := boltstore.Open(path, boltstore.WithTimeout(100*time.Millisecond))
	if err == nil {
		s2.Close()
		t.Fatal("second Open of an open store: got nil error, want ErrLocked")
	}
	if !errors.Is(err, boltstore.ErrLocked) {
		t.Errorf("second Open: got %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("second Open took %v, want about the 100ms timeout", d)
	}
}

func TestFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "privy")
	path := filepath.Join(dir, "privy.db")
	open(t, path).Close()
	for _, tc := range []struct {
		path string
		want os.FileMode
	}{{path, 0o600}, {dir, 0o700 | os.ModeDir}} {
		fi, err := os.Stat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode(); got != tc.want {
			t.Errorf("mode of %s: got %v, want %v", tc.path, got, tc.want)
		}
	}
}

func TestOpenNotAStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "privy.db")
	if err := os.WriteFile(path, []byte("not a bbolt file, just some text that is long enough"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := boltstore.Open(path); err == nil {
		s.Close()
		t.Fatal("Open of a text file: got nil error, want one")
	}
}

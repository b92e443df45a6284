package etcdstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/privyhq/privy/internal/store"
	"github.com/privyhq/privy/internal/store/etcdstore"
)

// These tests of Rewrap run under TestSingleMember.

// testRewrapManyBatches rewraps more versions and bytes than one etcd
// transaction can hold, and checks that a failure on the very last one
// still changes nothing, and that success changes everything.
func testRewrapManyBatches(t *testing.T, eps []string) {
	prefix := newPrefix(t)
	s, other := open(t, eps, prefix), open(t, eps, prefix)
	ctx := t.Context()
	const paths, perPath = 40, 6 // 240 versions, over the 128 ops of a transaction
	size := func(i int) int {
		if i%10 == 0 {
			return 300 << 10 // several of these overflow one request
		}
		return 100
	}
	for i := range paths {
		p := fmt.Sprintf("app/%02d", i)
		for v := 1; v <= perPath; v++ {
			if _, err := s.Put(ctx, p, store.PutOptions{}, seal(env(p, v, size(i)))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Hide(ctx, "app/05"); err != nil {
		t.Fatal(err)
	}
	total := paths * perPath
	errLast := errors.New("fail on the last version")
	calls := 0
	_, err := s.Rewrap(ctx, func(_ string, _ int, e []byte) ([]byte, error) {
		if calls++; calls == total {
			return nil, errLast
		}
		return append([]byte("new:"), e...), nil
	})
	if !errors.Is(err, errLast) {
		t.Fatalf("Rewrap failing on the last version: got %v, want its error", err)
	}
	if v, err := other.Get(ctx, "app/00", 1); err != nil || !bytes.Equal(v.Envelope, env("app/00", 1, size(0))) {
		t.Errorf("Get(app/00, 1) after a failed Rewrap: got %.40q, %v; want it unchanged", v.Envelope, err)
	}

	n, err := s.Rewrap(ctx, func(_ string, _ int, e []byte) ([]byte, error) { return append([]byte("new:"), e...), nil })
	if err != nil || n != total {
		t.Fatalf("Rewrap: got %d, %v; want %d", n, err, total)
	}
	if _, err := other.Put(ctx, "app/05", store.PutOptions{}, seal([]byte("after"))); err != nil { // un-hide
		t.Fatal(err)
	}
	list, err := other.List(ctx, "app/")
	if err != nil || len(list) != paths {
		t.Fatalf("List: got %d, %v; want %d", len(list), err, paths)
	}
	for i, m := range list {
		p := fmt.Sprintf("app/%02d", i)
		for v := 1; v <= perPath; v++ {
			want := append([]byte("new:"), env(p, v, size(i))...)
			if got, err := other.Get(ctx, p, v); err != nil || !bytes.Equal(got.Envelope, want) {
				t.Errorf("Get(%s, %d) after Rewrap: got %.40q, %v; want %.40q", p, v, got.Envelope, err, want)
			}
		}
		if p == "app/05" {
			continue
		}
		if want := len(env(p, perPath, size(i))) + 4; m.Size != want {
			t.Errorf("List after Rewrap: got size %d for %s, want %d", m.Size, p, want)
		}
	}
}

// testRewrapConcurrentWrites changes secrets from another server while a
// Rewrap is calling fn: what was written or pruned meanwhile is left as the
// writer left it.
func testRewrapConcurrentWrites(t *testing.T, eps []string) {
	prefix := newPrefix(t)
	s, other := open(t, eps, prefix), open(t, eps, prefix)
	ctx := t.Context()
	put := func(st *etcdstore.Store, p string, opts store.PutOptions) {
		t.Helper()
		if _, err := st.Put(ctx, p, opts, func(v int) ([]byte, error) { return env(p, v, 0), nil }); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"a", "a", "b", "c", "d"} {
		put(s, p, store.PutOptions{})
	}
	started, proceed := make(chan struct{}), make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		_, err := s.Rewrap(ctx, func(_ string, _ int, e []byte) ([]byte, error) {
			once.Do(func() { close(started); <-proceed })
			return append([]byte("new:"), e...), nil
		})
		done <- err
	}()
	<-started
	put(other, "a", store.PutOptions{MaxVersions: 2}) // a#3, pruning a#1
	if err := other.Destroy(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	put(other, "b", store.PutOptions{}) // b#1 again, a different value
	put(other, "e", store.PutOptions{})
	close(proceed)
	if err := <-done; err != nil {
		t.Fatalf("Rewrap: %v", err)
	}
	for _, tc := range []struct {
		path string
		v    int
		want string
	}{
		{"a", 2, "new:" + string(env("a", 2, 0))},
		{"a", 3, string(env("a", 3, 0))},
		{"b", 1, string(env("b", 1, 0))},
		{"c", 1, "new:" + string(env("c", 1, 0))},
		{"e", 1, string(env("e", 1, 0))},
	} {
		if got, err := other.Get(ctx, tc.path, tc.v); err != nil || string(got.Envelope) != tc.want {
			t.Errorf("Get(%s, %d): got %q, %v; want %q", tc.path, tc.v, got.Envelope, err, tc.want)
		}
	}
	if _, err := other.Get(ctx, "a", 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(a, 1) pruned during the Rewrap: got %v, want ErrNotFound", err)
	}
	list, err := other.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range list {
		want := len(env(m.Path, m.Version, 0))
		if m.Path == "c" || m.Path == "d" {
			want += 4
		}
		if m.Size != want {
			t.Errorf("List: got size %d for %s, want %d", m.Size, m.Path, want)
		}
	}
}

// testRewrapExclusive starts a second Rewrap while one is calling fn: it
// is refused, and the first one completes.
func testRewrapExclusive(t *testing.T, eps []string) {
	prefix := newPrefix(t)
	s, other := open(t, eps, prefix), open(t, eps, prefix)
	ctx := t.Context()
	if _, err := s.Put(ctx, "x", store.PutOptions{}, seal([]byte("old"))); err != nil {
		t.Fatal(err)
	}
	started, proceed := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := s.Rewrap(ctx, func(_ string, _ int, e []byte) ([]byte, error) {
			close(started)
			<-proceed
			return []byte("new"), nil
		})
		done <- err
	}()
	<-started
	_, err := other.Rewrap(ctx, func(_ string, _ int, e []byte) ([]byte, error) { return []byte("other"), nil })
	if err == nil || !strings.Contains(err.Error(), "in progress") {
		t.Errorf("Rewrap while another stages: got %v, want an error saying one is in progress", err)
	}
	if v, err := other.Get(ctx, "x", 0); err != nil || string(v.Envelope) != "old" {
		t.Errorf("Get while a Rewrap stages: got %q, %v; want old", v.Envelope, err)
	}
	close(proceed)
	if err := <-done; err != nil {
		t.Fatalf("Rewrap: %v", err)
	}
	if v, err := other.Get(ctx, "x", 0); err != nil || string(v.Envelope) != "new" {
		t.Errorf("Get after Rewrap: got %q, %v; want new", v.Envelope, err)
	}
	if n, err := other.Rewrap(ctx, func(_ string, _ int, e []byte) ([]byte, error) { return e, nil }); err != nil || n != 1 {
		t.Errorf("Rewrap after the first one: got %d, %v; want 1, nil", n, err)
	}
}

// fill stores a#1, a#2, b#1 and a hidden c#1.
func fill(t *testing.T, s *etcdstore.Store) {
	t.Helper()
	for _, p := range []string{"a", "a", "b", "c"} {
		if _, err := s.Put(t.Context(), p, store.PutOptions{}, func(v int) ([]byte, error) { return env(p, v, 0), nil }); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Hide(t.Context(), "c"); err != nil {
		t.Fatal(err)
	}
}

func rewrapNew(_ string, _ int, e []byte) ([]byte, error) { return append([]byte("new:"), e...), nil }

// wantEnvelopes checks a#1, a#2, b#1 and, once c is visible again, c#1
// against what they were stored with, with prefix before them; it also
// checks the sizes List reports.
func wantEnvelopes(t *testing.T, s *etcdstore.Store, prefix string) {
	t.Helper()
	ctx := t.Context()
	for _, pv := range []struct {
		p string
		v int
	}{{"a", 1}, {"a", 2}, {"b", 1}} {
		want := prefix + string(env(pv.p, pv.v, 0))
		if got, err := s.Get(ctx, pv.p, pv.v); err != nil || string(got.Envelope) != want {
			t.Errorf("Get(%s, %d): got %q, %v; want %q", pv.p, pv.v, got.Envelope, err, want)
		}
	}
	list, err := s.List(ctx, "")
	if err != nil || len(list) != 2 {
		t.Fatalf("List: got %v, %v; want a and b", list, err)
	}
	for _, m := range list {
		if want := len(prefix) + len(env(m.Path, m.Version, 0)); m.Size != want {
			t.Errorf("List: got size %d for %s, want %d", m.Size, m.Path, want)
		}
	}
}

// testRewrapDiesAfterCommit leaves a committed rewrap unapplied, as a
// server that dies right after the commit would: the next reader, on
// another server, sees every new envelope and finishes it.
func testRewrapDiesAfterCommit(t *testing.T, eps []string) {
	prefix := newPrefix(t)
	s, other := open(t, eps, prefix), open(t, eps, prefix)
	ctx := t.Context()
	fill(t, s)
	if err := s.CommitRewrapOnly(ctx, rewrapNew); err != nil {
		t.Fatalf("committing a rewrap: %v", err)
	}
	if n, err := s.RewrapKeys(ctx); err != nil || n == 0 {
		t.Fatalf("keys of the committed rewrap: got %d, %v; want some left to apply", n, err)
	}
	wantEnvelopes(t, other, "new:")
	if n, err := s.RewrapKeys(ctx); err != nil || n != 0 {
		t.Errorf("keys of the rewrap after a read finished it: got %d, %v; want 0", n, err)
	}
	if _, err := other.Put(ctx, "c", store.PutOptions{}, seal([]byte("c2"))); err != nil {
		t.Fatal(err)
	}
	if got, err := other.Get(ctx, "c", 1); err != nil || string(got.Envelope) != "new:"+string(env("c", 1, 0)) {
		t.Errorf("Get(c, 1), hidden during the rewrap: got %q, %v; want it rewrapped", got.Envelope, err)
	}
}

// testRewrapDiesWhileStaging leaves a staging rewrap whose lease expired,
// as a server that dies before the commit would: nothing changed, and the
// next Rewrap runs and clears what was staged.
func testRewrapDiesWhileStaging(t *testing.T, eps []string) {
	prefix := newPrefix(t)
	s, other := open(t, eps, prefix), open(t, eps, prefix)
	ctx := t.Context()
	fill(t, s)
	if err := s.StageRewrapAndDie(ctx, func(_ string, _ int, e []byte) ([]byte, error) { return []byte("dead"), nil }); err != nil {
		t.Fatalf("staging a rewrap: %v", err)
	}
	wantEnvelopes(t, other, "")
	n, err := other.Rewrap(ctx, rewrapNew)
	if err != nil || n != 4 {
		t.Fatalf("Rewrap after a dead one: got %d, %v; want 4", n, err)
	}
	wantEnvelopes(t, s, "new:")
	if n, err := s.RewrapKeys(ctx); err != nil || n != 0 {
		t.Errorf("keys of rewraps after the Rewrap: got %d, %v; want 0", n, err)
	}
}

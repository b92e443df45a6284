package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/privyhq/privy/internal/store"
)

// This file tests the operations that span every secret: List and Rewrap.

func testList(t *testing.T, s store.Store) {
	ctx := t.Context()
	if got, err := s.List(ctx, ""); err != nil || len(got) != 0 {
		t.Errorf("List on an empty store: got %v, %v; want nothing", got, err)
	}
	paths := []string{"b/x", "a/c", "ab", "a", "app/one", "a/b", "hidden/x", "destroyed"}
	latest := map[string]store.VersionMeta{}
	for i, p := range paths {
		for range i%3 + 1 {
			latest[p] = put(t, s, p)
		}
	}
	if err := s.Hide(ctx, "hidden/x"); err != nil {
		t.Fatalf("Hide: %v", err)
	}
	if err := s.Destroy(ctx, "destroyed"); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"a", "a/b", "a/c", "ab", "app/one", "b/x"}},
		{"a", []string{"a", "a/b", "a/c", "ab", "app/one"}},
		{"a/", []string{"a/b", "a/c"}},
		{"a/b", []string{"a/b"}},
		{"ap", []string{"app/one"}},
		{"hidden", nil},
		{"destroyed", nil},
		{"zzz", nil},
	} {
		list, err := s.List(ctx, tc.prefix)
		if err != nil {
			t.Fatalf("List(%q): %v", tc.prefix, err)
		}
		var got []string
		for _, m := range list {
			got = append(got, m.Path)
			want := latest[m.Path]
			if m.Version != want.Version || m.Size != want.Size || !m.Created.Equal(want.Created) {
				t.Errorf("List(%q): got %+v for %q, want version %d size %d created %v", tc.prefix, m, m.Path, want.Version, want.Size, want.Created)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("List(%q): got %q, want %q", tc.prefix, got, tc.want)
		}
	}
}

// wrapped is what the suite's RewrapFunc turns an envelope into; it changes
// the length so that sizes must be updated too.
func wrapped(e []byte) []byte { return append([]byte("rewrapped:"), e...) }

func testRewrap(t *testing.T, s store.Store) {
	ctx := t.Context()
	if n, err := s.Rewrap(ctx, func(string, int, []byte) ([]byte, error) { return nil, errRewrap }); err != nil || n != 0 {
		t.Errorf("Rewrap on an empty store: got %d, %v; want 0, nil", n, err)
	}
	stored := map[string][]store.VersionMeta{}
	for _, p := range []string{"x", "x", "x", "y", "z", "z"} {
		stored[p] = append(stored[p], put(t, s, p))
	}
	putOpts(t, s, "x", store.PutOptions{MaxVersions: 3}) // prunes x#1
	stored["x"] = append(stored["x"][1:], latestMeta(t, s, "x"))
	if err := s.Hide(ctx, "z"); err != nil {
		t.Fatalf("Hide: %v", err)
	}

	seen := map[string]int{}
	n, err := s.Rewrap(ctx, func(path string, v int, e []byte) ([]byte, error) {
		seen[fmt.Sprintf("%s#%d", path, v)]++
		if !bytes.Equal(e, env(path, v)) {
			t.Errorf("Rewrap: fn got envelope %q for %s#%d, want %q", e, path, v, env(path, v))
		}
		return wrapped(e), nil
	})
	if err != nil {
		t.Fatalf("Rewrap: %v", err)
	}
	wantSeen := map[string]int{"x#2": 1, "x#3": 1, "x#4": 1, "y#1": 1, "z#1": 1, "z#2": 1}
	if n != len(wantSeen) {
		t.Errorf("Rewrap: got count %d, want %d", n, len(wantSeen))
	}
	if fmt.Sprint(seen) != fmt.Sprint(wantSeen) {
		t.Errorf("Rewrap: fn called for %v, want once for each of %v", seen, wantSeen)
	}

	put(t, s, "z") // un-hide to read its rewrapped versions
	for p, vms := range stored {
		for _, vm := range vms {
			v := get(t, s, p, vm.Version)
			if want := wrapped(env(p, vm.Version)); !bytes.Equal(v.Envelope, want) {
				t.Errorf("Get(%s, %d) after Rewrap: got %q, want %q", p, vm.Version, v.Envelope, want)
			}
			if !v.Created.Equal(vm.Created) {
				t.Errorf("Get(%s, %d) after Rewrap: got created %v, want it unchanged at %v", p, vm.Version, v.Created, vm.Created)
			}
		}
		h, err := s.History(ctx, p)
		if err != nil {
			t.Fatalf("History(%s): %v", p, err)
		}
		for _, vm := range h {
			if vm.Version > vms[len(vms)-1].Version {
				continue // stored after Rewrap
			}
			if want := len(wrapped(env(p, vm.Version))); vm.Size != want {
				t.Errorf("History(%s) after Rewrap: got size %d for version %d, want %d", p, vm.Size, vm.Version, want)
			}
		}
	}
	list, err := s.List(ctx, "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, m := range list {
		if m.Path == "z" {
			continue // its latest version was stored after Rewrap
		}
		if want := len(wrapped(env(m.Path, m.Version))); m.Size != want {
			t.Errorf("List after Rewrap: got size %d for %s, want %d", m.Size, m.Path, want)
		}
	}
}

func latestMeta(t testing.TB, s store.Store, path string) store.VersionMeta {
	t.Helper()
	h, err := s.History(t.Context(), path)
	if err != nil || len(h) == 0 {
		t.Fatalf("History(%s): got %v, %v", path, h, err)
	}
	return h[len(h)-1]
}

func testRewrapAtomic(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, p := range []string{"a", "a", "b", "c", "c", "c"} {
		put(t, s, p)
	}
	if err := s.Hide(ctx, "b"); err != nil {
		t.Fatalf("Hide: %v", err)
	}
	const total = 6
	for failAt := 1; failAt <= total; failAt++ {
		calls := 0
		_, err := s.Rewrap(ctx, func(path string, v int, e []byte) ([]byte, error) {
			calls++
			if calls == failAt {
				return nil, errRewrap
			}
			return wrapped(e), nil
		})
		wantErr(t, fmt.Sprintf("Rewrap failing on call %d", failAt), err, errRewrap)
		for _, p := range []string{"a", "c"} {
			for _, v := range versions(t, s, p) {
				if e := get(t, s, p, v).Envelope; !bytes.Equal(e, env(p, v)) {
					t.Errorf("Rewrap failing on call %d: %s#%d changed to %q, want %q", failAt, p, v, e, env(p, v))
				}
			}
		}
	}
	put(t, s, "b") // un-hide b: its versions must be untouched too
	if e := get(t, s, "b", 1).Envelope; !bytes.Equal(e, env("b", 1)) {
		t.Errorf("failed Rewraps changed hidden b#1 to %q, want %q", e, env("b", 1))
	}
	n, err := s.Rewrap(ctx, func(path string, v int, e []byte) ([]byte, error) { return e, nil })
	if err != nil || n != total+1 {
		t.Errorf("Rewrap after failures: got %d, %v; want %d, nil", n, err, total+1)
	}
}

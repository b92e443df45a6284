// Package storetest is the conformance suite every store.Store backend must
// pass. It turns each sentence of the contract in package store into a
// subtest that runs against a fresh, empty store.
//
// A backend's test calls Run with a function that opens an empty store:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return memstore.New() })
//	}
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/privyhq/privy/internal/store"
)

// Run runs the conformance suite. open must return a new, empty store for
// each call; Run closes it when the subtest ends (ErrClosed from that Close
// is ignored, since some subtests close the store themselves).
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"VersionsCountFromOne", testVersionsCountFromOne},
		{"SealReceivesVersion", testSealReceivesVersion},
		{"GetLatestAndSpecific", testGetLatestAndSpecific},
		{"BinarySafeEnvelopes", testBinarySafeEnvelopes},
		{"SealErrorStoresNothing", testSealErrorStoresNothing},
		{"PruneToMaxVersions", testPruneToMaxVersions},
		{"PruneDefault", testPruneDefault},
		{"History", testHistory},
		{"Hide", testHide},
		{"Destroy", testDestroy},
		{"DestroyHidden", testDestroyHidden},
		{"List", testList},
		{"Rewrap", testRewrap},
		{"RewrapAtomic", testRewrapAtomic},
		{"RecordCreate", testRecordCreate},
		{"RecordCAS", testRecordCAS},
		{"RecordRevisionChanges", testRecordRevisionChanges},
		{"DeleteRecord", testDeleteRecord},
		{"ListRecords", testListRecords},
		{"RecordValues", testRecordValues},
		{"NoAliasing", testNoAliasing},
		{"CanceledContext", testCanceledContext},
		{"Closed", testClosed},
		{"ConcurrentPutSamePath", testConcurrentPutSamePath},
		{"ConcurrentPutManyPaths", testConcurrentPutManyPaths},
		{"ConcurrentRecordCAS", testConcurrentRecordCAS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
					t.Errorf("closing store: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

var (
	errSeal   = errors.New("test seal failure")
	errRewrap = errors.New("test rewrap failure")
)

// env is the envelope the suite's sealer produces for a path and version.
func env(path string, version int) []byte {
	return fmt.Appendf(nil, "sealed(%s#%d)", path, version)
}

// sealer returns a SealFunc that seals env(path, version).
func sealer(path string) store.SealFunc {
	return func(version int) ([]byte, error) { return env(path, version), nil }
}

// fixed returns a SealFunc that always returns b.
func fixed(b []byte) store.SealFunc {
	return func(int) ([]byte, error) { return b, nil }
}

func put(t testing.TB, s store.Store, path string) store.VersionMeta {
	t.Helper()
	return putOpts(t, s, path, store.PutOptions{})
}

func putOpts(t testing.TB, s store.Store, path string, opts store.PutOptions) store.VersionMeta {
	t.Helper()
	vm, err := s.Put(t.Context(), path, opts, sealer(path))
	if err != nil {
		t.Fatalf("Put(%q): %v", path, err)
	}
	return vm
}

func get(t testing.TB, s store.Store, path string, version int) store.Version {
	t.Helper()
	v, err := s.Get(t.Context(), path, version)
	if err != nil {
		t.Fatalf("Get(%q, %d): %v", path, version, err)
	}
	return v
}

// wantErr fails unless errors.Is(err, target).
func wantErr(t testing.TB, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want %v", what, err, target)
	}
}

// wantGone checks that path is invisible to Get, History and List.
func wantGone(t testing.TB, s store.Store, path string) {
	t.Helper()
	ctx := t.Context()
	_, err := s.Get(ctx, path, 0)
	wantErr(t, fmt.Sprintf("Get(%q, 0)", path), err, store.ErrNotFound)
	_, err = s.History(ctx, path)
	wantErr(t, fmt.Sprintf("History(%q)", path), err, store.ErrNotFound)
	list, err := s.List(ctx, "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, m := range list {
		if m.Path == path {
			t.Errorf("List: got %q in the list, want it absent", path)
		}
	}
}

// versions returns the version numbers of History(path).
func versions(t testing.TB, s store.Store, path string) []int {
	t.Helper()
	h, err := s.History(t.Context(), path)
	if err != nil {
		t.Fatalf("History(%q): %v", path, err)
	}
	var vs []int
	for _, vm := range h {
		vs = append(vs, vm.Version)
	}
	return vs
}

// seq returns [from, from+1, …, to].
func seq(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func testVersionsCountFromOne(t *testing.T, s store.Store) {
	var last time.Time
	for want := 1; want <= 3; want++ {
		before := time.Now()
		vm := put(t, s, "app/db")
		after := time.Now()
		if vm.Version != want {
			t.Errorf("Put #%d: got version %d, want %d", want, vm.Version, want)
		}
		if got, want := vm.Size, len(env("app/db", want)); got != want {
			t.Errorf("Put #%d: got size %d, want %d", want, got, want)
		}
		if vm.Created.Before(before.Add(-time.Second)) || vm.Created.After(after.Add(time.Second)) {
			t.Errorf("Put #%d: got created %v, want between %v and %v", want, vm.Created, before, after)
		}
		if vm.Created.Before(last) {
			t.Errorf("Put #%d: got created %v before the previous version's %v", want, vm.Created, last)
		}
		last = vm.Created
	}
	if got := put(t, s, "app/other").Version; got != 1 {
		t.Errorf("Put on a second path: got version %d, want 1", got)
	}
}

func testSealReceivesVersion(t *testing.T, s store.Store) {
	for want := 1; want <= 3; want++ {
		var got []int
		vm, err := s.Put(t.Context(), "k", store.PutOptions{}, func(v int) ([]byte, error) {
			got = append(got, v)
			return env("k", v), nil
		})
		if err != nil {
			t.Fatalf("Put: %v", err)
		}
		if len(got) == 0 {
			t.Fatalf("Put #%d: seal was never called", want)
		}
		for _, v := range got {
			if v != want || v != vm.Version {
				t.Errorf("Put #%d: seal got version %d, want %d (Put returned %d)", want, v, want, vm.Version)
			}
		}
		if e := get(t, s, "k", want).Envelope; !bytes.Equal(e, env("k", want)) {
			t.Errorf("Get(k, %d): got envelope %q, want %q", want, e, env("k", want))
		}
	}
}

func testGetLatestAndSpecific(t *testing.T, s store.Store) {
	ctx := t.Context()
	var puts []store.VersionMeta
	for range 3 {
		puts = append(puts, put(t, s, "a/b"))
	}
	put(t, s, "a/b/c") // a neighbour must not leak into a/b
	for _, vm := range puts {
		v := get(t, s, "a/b", vm.Version)
		if v.Path != "a/b" || v.Version != vm.Version || !v.Created.Equal(vm.Created) || !bytes.Equal(v.Envelope, env("a/b", vm.Version)) {
			t.Errorf("Get(a/b, %d): got %+v, want version %d created %v envelope %q", vm.Version, v, vm.Version, vm.Created, env("a/b", vm.Version))
		}
	}
	if v := get(t, s, "a/b", 0); v.Version != 3 || !bytes.Equal(v.Envelope, env("a/b", 3)) {
		t.Errorf("Get(a/b, 0): got version %d envelope %q, want 3 %q", v.Version, v.Envelope, env("a/b", 3))
	}
	for _, tc := range []struct {
		path    string
		version int
	}{{"a/b", 4}, {"a/b", -1}, {"a/b", 1 << 40}, {"missing", 0}, {"missing", 1}, {"a", 0}} {
		_, err := s.Get(ctx, tc.path, tc.version)
		wantErr(t, fmt.Sprintf("Get(%q, %d)", tc.path, tc.version), err, store.ErrNotFound)
	}
}

func testBinarySafeEnvelopes(t *testing.T, s store.Store) {
	all := make([]byte, 512)
	for i := range all {
		all[i] = byte(i)
	}
	big := bytes.Repeat([]byte{0, 0xff, '\n'}, 100_000)
	for _, tc := range []struct {
		name string
		env  []byte
	}{{"all-bytes", all}, {"empty", []byte{}}, {"nil", nil}, {"big", big}, {"nul", []byte{0}}} {
		vm, err := s.Put(t.Context(), "bin/"+tc.name, store.PutOptions{}, fixed(tc.env))
		if err != nil {
			t.Fatalf("Put(%s): %v", tc.name, err)
		}
		if vm.Size != len(tc.env) {
			t.Errorf("Put(%s): got size %d, want %d", tc.name, vm.Size, len(tc.env))
		}
		if got := get(t, s, "bin/"+tc.name, 0).Envelope; !bytes.Equal(got, tc.env) {
			t.Errorf("Get(%s): got %d bytes, want the %d bytes stored", tc.name, len(got), len(tc.env))
		}
		h, err := s.History(t.Context(), "bin/"+tc.name)
		if err != nil || len(h) != 1 || h[0].Size != len(tc.env) {
			t.Errorf("History(%s): got %+v, %v; want one version of size %d", tc.name, h, err, len(tc.env))
		}
	}
}

func testSealErrorStoresNothing(t *testing.T, s store.Store) {
	ctx := t.Context()
	failing := func(int) ([]byte, error) { return nil, errSeal }
	_, err := s.Put(ctx, "new", store.PutOptions{}, failing)
	wantErr(t, "Put(new) with failing seal", err, errSeal)
	wantGone(t, s, "new")
	if got := put(t, s, "new").Version; got != 1 {
		t.Errorf("Put(new) after a failed seal: got version %d, want 1", got)
	}

	put(t, s, "old")
	put(t, s, "old")
	_, err = s.Put(ctx, "old", store.PutOptions{MaxVersions: 1}, failing)
	wantErr(t, "Put(old) with failing seal", err, errSeal)
	if got, want := versions(t, s, "old"), []int{1, 2}; !slices.Equal(got, want) {
		t.Errorf("History(old) after a failed seal: got %v, want %v (nothing pruned)", got, want)
	}
	if got := put(t, s, "old").Version; got != 3 {
		t.Errorf("Put(old) after a failed seal: got version %d, want 3", got)
	}

	put(t, s, "hidden")
	if err := s.Hide(ctx, "hidden"); err != nil {
		t.Fatalf("Hide: %v", err)
	}
	_, err = s.Put(ctx, "hidden", store.PutOptions{}, failing)
	wantErr(t, "Put(hidden) with failing seal", err, errSeal)
	wantGone(t, s, "hidden") // a failed Put must not un-hide
}

func testPruneToMaxVersions(t *testing.T, s store.Store) {
	ctx := t.Context()
	for range 5 {
		putOpts(t, s, "p", store.PutOptions{MaxVersions: 3})
	}
	if got, want := versions(t, s, "p"), []int{3, 4, 5}; !slices.Equal(got, want) {
		t.Errorf("History after 5 Puts keeping 3: got %v, want %v", got, want)
	}
	for _, v := range []int{1, 2} {
		_, err := s.Get(ctx, "p", v)
		wantErr(t, fmt.Sprintf("Get(p, %d) after pruning", v), err, store.ErrNotFound)
	}
	putOpts(t, s, "p", store.PutOptions{MaxVersions: 20}) // raising the limit does not bring anything back
	if got, want := versions(t, s, "p"), []int{3, 4, 5, 6}; !slices.Equal(got, want) {
		t.Errorf("History after raising the limit: got %v, want %v", got, want)
	}
	putOpts(t, s, "p", store.PutOptions{MaxVersions: 1})
	if got, want := versions(t, s, "p"), []int{7}; !slices.Equal(got, want) {
		t.Errorf("History after keeping 1: got %v, want %v", got, want)
	}
	if v := get(t, s, "p", 0); v.Version != 7 || !bytes.Equal(v.Envelope, env("p", 7)) {
		t.Errorf("Get(p, 0) after keeping 1: got version %d %q, want 7 %q", v.Version, v.Envelope, env("p", 7))
	}
}

func testPruneDefault(t *testing.T, s store.Store) {
	n := store.DefaultMaxVersions + 3
	for range n {
		put(t, s, "d")
	}
	if got, want := versions(t, s, "d"), seq(n-store.DefaultMaxVersions+1, n); !slices.Equal(got, want) {
		t.Errorf("History after %d Puts with MaxVersions 0: got %v, want %v", n, got, want)
	}
}

func testHistory(t *testing.T, s store.Store) {
	ctx := t.Context()
	var want []store.VersionMeta
	for i := range 4 {
		vm, err := s.Put(ctx, "h", store.PutOptions{}, fixed(bytes.Repeat([]byte("x"), i*7)))
		if err != nil {
			t.Fatalf("Put: %v", err)
		}
		want = append(want, vm)
	}
	got, err := s.History(ctx, "h")
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("History: got %d versions, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Version != want[i].Version || got[i].Size != want[i].Size || !got[i].Created.Equal(want[i].Created) {
			t.Errorf("History[%d]: got %+v, want %+v", i, got[i], want[i])
		}
	}
	_, err = s.History(ctx, "missing")
	wantErr(t, "History(missing)", err, store.ErrNotFound)
}

func testHide(t *testing.T, s store.Store) {
	ctx := t.Context()
	put(t, s, "x")
	put(t, s, "x")
	put(t, s, "y")
	if err := s.Hide(ctx, "x"); err != nil {
		t.Fatalf("Hide(x): %v", err)
	}
	wantGone(t, s, "x")
	for _, v := range []int{1, 2} {
		_, err := s.Get(ctx, "x", v)
		wantErr(t, fmt.Sprintf("Get(x, %d) while hidden", v), err, store.ErrNotFound)
	}
	wantErr(t, "Hide(x) while hidden", s.Hide(ctx, "x"), store.ErrNotFound)
	wantErr(t, "Hide(missing)", s.Hide(ctx, "missing"), store.ErrNotFound)
	get(t, s, "y", 0) // others are untouched

	if got := put(t, s, "x").Version; got != 3 {
		t.Errorf("Put(x) after Hide: got version %d, want 3", got)
	}
	if got, want := versions(t, s, "x"), []int{1, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("History(x) after un-hiding: got %v, want %v", got, want)
	}
	if e := get(t, s, "x", 1).Envelope; !bytes.Equal(e, env("x", 1)) {
		t.Errorf("Get(x, 1) after un-hiding: got %q, want %q", e, env("x", 1))
	}
}

func testDestroy(t *testing.T, s store.Store) {
	ctx := t.Context()
	put(t, s, "x")
	put(t, s, "x")
	put(t, s, "x/y")
	if err := s.Destroy(ctx, "x"); err != nil {
		t.Fatalf("Destroy(x): %v", err)
	}
	wantGone(t, s, "x")
	_, err := s.Get(ctx, "x", 1)
	wantErr(t, "Get(x, 1) after Destroy", err, store.ErrNotFound)
	wantErr(t, "Hide(x) after Destroy", s.Hide(ctx, "x"), store.ErrNotFound)
	wantErr(t, "Destroy(x) twice", s.Destroy(ctx, "x"), store.ErrNotFound)
	wantErr(t, "Destroy(missing)", s.Destroy(ctx, "missing"), store.ErrNotFound)
	get(t, s, "x/y", 0) // a path below is untouched

	if got := put(t, s, "x").Version; got != 1 {
		t.Errorf("Put(x) after Destroy: got version %d, want 1", got)
	}
	if got, want := versions(t, s, "x"), []int{1}; !slices.Equal(got, want) {
		t.Errorf("History(x) after Destroy and Put: got %v, want %v", got, want)
	}
}

func testDestroyHidden(t *testing.T, s store.Store) {
	ctx := t.Context()
	put(t, s, "x")
	put(t, s, "x")
	if err := s.Hide(ctx, "x"); err != nil {
		t.Fatalf("Hide: %v", err)
	}
	if err := s.Destroy(ctx, "x"); err != nil {
		t.Fatalf("Destroy of a hidden secret: %v", err)
	}
	n, err := s.Rewrap(ctx, func(path string, v int, e []byte) ([]byte, error) { return e, nil })
	if err != nil || n != 0 {
		t.Errorf("Rewrap after Destroy: got %d, %v; want 0 versions", n, err)
	}
	if got := put(t, s, "x").Version; got != 1 {
		t.Errorf("Put after destroying a hidden secret: got version %d, want 1", got)
	}
}

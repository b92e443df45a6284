package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/privyhq/privy/internal/store"
)

// This file tests metadata records: GetRecord, PutRecord, DeleteRecord and
// ListRecords.

func putRecord(t testing.TB, s store.Store, kind, key, value string, prev int64) int64 {
	t.Helper()
	rev, err := s.PutRecord(t.Context(), kind, key, []byte(value), prev)
	if err != nil {
		t.Fatalf("PutRecord(%s, %s, prev %d): %v", kind, key, prev, err)
	}
	if rev == 0 {
		t.Fatalf("PutRecord(%s, %s): got revision 0, want non-zero", kind, key)
	}
	return rev
}

// wantRecord checks that a record holds value at revision rev.
func wantRecord(t testing.TB, s store.Store, kind, key, value string, rev int64) {
	t.Helper()
	r, err := s.GetRecord(t.Context(), kind, key)
	if err != nil {
		t.Fatalf("GetRecord(%s, %s): %v", kind, key, err)
	}
	if r.Kind != kind || r.Key != key || string(r.Value) != value || r.Revision != rev {
		t.Errorf("GetRecord(%s, %s): got %+v, want value %q revision %d", kind, key, r, value, rev)
	}
}

func testRecordCreate(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.GetRecord(ctx, "token", "t1")
	wantErr(t, "GetRecord(missing)", err, store.ErrNotFound)
	rev := putRecord(t, s, "token", "t1", "one", 0)
	wantRecord(t, s, "token", "t1", "one", rev)

	_, err = s.PutRecord(ctx, "token", "t1", []byte("two"), 0)
	wantErr(t, "PutRecord(prev 0) on an existing record", err, store.ErrConflict)
	wantRecord(t, s, "token", "t1", "one", rev)

	_, err = s.PutRecord(ctx, "token", "t2", []byte("x"), rev)
	wantErr(t, "PutRecord(prev != 0) on a missing record", err, store.ErrConflict)
	_, err = s.GetRecord(ctx, "token", "t2")
	wantErr(t, "GetRecord after a conflicting create", err, store.ErrNotFound)

	rev3 := putRecord(t, s, "token", "t3", "three", store.AnyRevision)
	wantRecord(t, s, "token", "t3", "three", rev3)
}

func testRecordCAS(t *testing.T, s store.Store) {
	ctx := t.Context()
	r1 := putRecord(t, s, "profile", "dev", "v1", 0)
	r2 := putRecord(t, s, "profile", "dev", "v2", r1)
	wantRecord(t, s, "profile", "dev", "v2", r2)

	_, err := s.PutRecord(ctx, "profile", "dev", []byte("stale"), r1)
	wantErr(t, "PutRecord with a stale revision", err, store.ErrConflict)
	_, err = s.PutRecord(ctx, "profile", "dev", []byte("bogus"), r2+1000)
	wantErr(t, "PutRecord with a future revision", err, store.ErrConflict)
	wantRecord(t, s, "profile", "dev", "v2", r2)

	r3 := putRecord(t, s, "profile", "dev", "v3", store.AnyRevision)
	wantRecord(t, s, "profile", "dev", "v3", r3)
	r4 := putRecord(t, s, "profile", "dev", "v4", r3)
	wantRecord(t, s, "profile", "dev", "v4", r4)
}

func testRecordRevisionChanges(t *testing.T, s store.Store) {
	ctx := t.Context()
	seen := map[int64]string{}
	note := func(rev int64, what string) {
		if prev, ok := seen[rev]; ok {
			t.Errorf("%s: got revision %d, already returned by %s", what, rev, prev)
		}
		seen[rev] = what
	}
	rev := putRecord(t, s, "k", "a", "same", 0)
	note(rev, "create")
	for i := range 5 {
		rev = putRecord(t, s, "k", "a", "same", rev)
		note(rev, fmt.Sprintf("rewrite #%d with the same value", i))
	}
	note(putRecord(t, s, "k", "b", "same", 0), "create of another key")
	if err := s.DeleteRecord(ctx, "k", "a", rev); err != nil {
		t.Fatalf("DeleteRecord: %v", err)
	}
	// A re-created record must not reuse a revision a client may still hold.
	note(putRecord(t, s, "k", "a", "same", 0), "re-create after delete")
}

func testDeleteRecord(t *testing.T, s store.Store) {
	ctx := t.Context()
	wantErr(t, "DeleteRecord(missing, AnyRevision)", s.DeleteRecord(ctx, "k", "missing", store.AnyRevision), store.ErrNotFound)
	wantErr(t, "DeleteRecord(missing, rev 7)", s.DeleteRecord(ctx, "k", "missing", 7), store.ErrNotFound)

	r1 := putRecord(t, s, "k", "a", "v1", 0)
	r2 := putRecord(t, s, "k", "a", "v2", r1)
	wantErr(t, "DeleteRecord with a stale revision", s.DeleteRecord(ctx, "k", "a", r1), store.ErrConflict)
	wantRecord(t, s, "k", "a", "v2", r2)
	if err := s.DeleteRecord(ctx, "k", "a", 0); err == nil {
		t.Errorf("DeleteRecord with prev 0: got nil error, want an error")
	}
	wantRecord(t, s, "k", "a", "v2", r2)

	if err := s.DeleteRecord(ctx, "k", "a", r2); err != nil {
		t.Fatalf("DeleteRecord with the current revision: %v", err)
	}
	_, err := s.GetRecord(ctx, "k", "a")
	wantErr(t, "GetRecord after DeleteRecord", err, store.ErrNotFound)
	wantErr(t, "DeleteRecord twice", s.DeleteRecord(ctx, "k", "a", r2), store.ErrNotFound)

	putRecord(t, s, "k", "b", "v", 0)
	if err := s.DeleteRecord(ctx, "k", "b", store.AnyRevision); err != nil {
		t.Fatalf("DeleteRecord(AnyRevision): %v", err)
	}
	_, err = s.GetRecord(ctx, "k", "b")
	wantErr(t, "GetRecord after DeleteRecord(AnyRevision)", err, store.ErrNotFound)
}

func testListRecords(t *testing.T, s store.Store) {
	ctx := t.Context()
	if got, err := s.ListRecords(ctx, "token"); err != nil || len(got) != 0 {
		t.Errorf("ListRecords on an empty store: got %v, %v; want nothing", got, err)
	}
	revs := map[string]int64{}
	for _, kk := range [][2]string{
		{"token", "c"}, {"token", "a"}, {"token", "b/1"}, {"token", "b"}, {"token", "gone"},
		{"tok", "x"}, {"tokens", "y"}, {"profile", "a"}, {"", "empty-kind"},
	} {
		revs[kk[0]+"|"+kk[1]] = putRecord(t, s, kk[0], kk[1], kk[0]+"="+kk[1], 0)
	}
	if err := s.DeleteRecord(ctx, "token", "gone", store.AnyRevision); err != nil {
		t.Fatalf("DeleteRecord: %v", err)
	}
	// Secrets live in their own namespace.
	put(t, s, "token")

	for _, tc := range []struct {
		kind string
		want []string
	}{
		{"token", []string{"a", "b", "b/1", "c"}},
		{"tok", []string{"x"}},
		{"tokens", []string{"y"}},
		{"profile", []string{"a"}},
		{"", []string{"empty-kind"}},
		{"to", nil},
		{"none", nil},
	} {
		list, err := s.ListRecords(ctx, tc.kind)
		if err != nil {
			t.Fatalf("ListRecords(%q): %v", tc.kind, err)
		}
		var got []string
		for _, r := range list {
			got = append(got, r.Key)
			if r.Kind != tc.kind || string(r.Value) != tc.kind+"="+r.Key || r.Revision != revs[tc.kind+"|"+r.Key] {
				t.Errorf("ListRecords(%q): got %+v, want value %q revision %d", tc.kind, r, tc.kind+"="+r.Key, revs[tc.kind+"|"+r.Key])
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("ListRecords(%q): got keys %q, want %q", tc.kind, got, tc.want)
		}
	}
}

func testRecordValues(t *testing.T, s store.Store) {
	ctx := t.Context()
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	for _, tc := range []struct {
		key   string
		value []byte
	}{{"all-bytes", all}, {"empty", []byte{}}, {"nil", nil}, {"nul\x00key", []byte("v")}, {"ünïcode/key:1", []byte("v")}} {
		rev, err := s.PutRecord(ctx, "bin", tc.key, tc.value, 0)
		if err != nil {
			t.Fatalf("PutRecord(%q): %v", tc.key, err)
		}
		r, err := s.GetRecord(ctx, "bin", tc.key)
		if err != nil {
			t.Fatalf("GetRecord(%q): %v", tc.key, err)
		}
		if r.Key != tc.key || !bytes.Equal(r.Value, tc.value) || r.Revision != rev {
			t.Errorf("GetRecord(%q): got key %q value %q revision %d, want %q %q %d", tc.key, r.Key, r.Value, r.Revision, tc.key, tc.value, rev)
		}
	}
	list, err := s.ListRecords(ctx, "bin")
	if err != nil || len(list) != 5 {
		t.Errorf("ListRecords(bin): got %d records, %v; want 5", len(list), err)
	}
}

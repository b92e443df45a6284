package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/privyhq/privy/internal/store"
)

// This file tests what holds around the calls: concurrent use, copies in and
// out, cancelled contexts and Close.

func testConcurrentPutSamePath(t *testing.T, s store.Store) {
	const workers, puts = 16, 50
	ctx := t.Context()
	opts := store.PutOptions{MaxVersions: workers * puts}
	results := make(chan int, workers*puts)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range puts {
				vm, err := s.Put(ctx, "hot", opts, sealer("hot"))
				if err != nil {
					t.Errorf("Put: %v", err)
					return
				}
				results <- vm.Version
			}
		})
	}
	// Readers run alongside the writers so the race detector sees them.
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if v, err := s.Get(ctx, "hot", 0); err == nil && !bytes.Equal(v.Envelope, env("hot", v.Version)) {
					t.Errorf("Get(hot, 0) during Puts: got %q for version %d", v.Envelope, v.Version)
				}
				if _, err := s.List(ctx, ""); err != nil {
					t.Errorf("List during Puts: %v", err)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	close(results)

	var got []int
	for v := range results {
		got = append(got, v)
	}
	slices.Sort(got)
	if want := seq(1, workers*puts); !slices.Equal(got, want) {
		t.Fatalf("concurrent Puts: got versions %v, want each of 1..%d once", got, workers*puts)
	}
	if v := get(t, s, "hot", 0); v.Version != workers*puts {
		t.Errorf("Get(hot, 0): got version %d, want %d", v.Version, workers*puts)
	}
	for _, v := range []int{1, workers * puts / 2, workers * puts} {
		if e := get(t, s, "hot", v).Envelope; !bytes.Equal(e, env("hot", v)) {
			t.Errorf("Get(hot, %d): got %q, want %q", v, e, env("hot", v))
		}
	}
	if got := versions(t, s, "hot"); !slices.Equal(got, seq(1, workers*puts)) {
		t.Errorf("History(hot): got %d versions, want 1..%d", len(got), workers*puts)
	}
}

func testConcurrentPutManyPaths(t *testing.T, s store.Store) {
	const workers, puts = 16, 20
	ctx := t.Context()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			path := fmt.Sprintf("svc/%02d", w)
			for i := 1; i <= puts; i++ {
				vm, err := s.Put(ctx, path, store.PutOptions{MaxVersions: 5}, sealer(path))
				if err != nil {
					t.Errorf("Put(%s): %v", path, err)
					return
				}
				if vm.Version != i {
					t.Errorf("Put(%s) #%d: got version %d, want %d", path, i, vm.Version, i)
				}
			}
		})
	}
	wg.Wait()
	list, err := s.List(ctx, "svc/")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(list) != workers {
		t.Fatalf("List: got %d secrets, want %d", len(list), workers)
	}
	for _, m := range list {
		if m.Version != puts {
			t.Errorf("List: got version %d for %s, want %d", m.Version, m.Path, puts)
		}
		if got := versions(t, s, m.Path); !slices.Equal(got, seq(puts-4, puts)) {
			t.Errorf("History(%s): got %v, want %v", m.Path, got, seq(puts-4, puts))
		}
	}
}

func testConcurrentRecordCAS(t *testing.T, s store.Store) {
	const workers, incs = 8, 25
	ctx := t.Context()
	putRecord(t, s, "counter", "c", "0", 0)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range incs {
				for {
					r, err := s.GetRecord(ctx, "counter", "c")
					if err != nil {
						t.Errorf("GetRecord: %v", err)
						return
					}
					n, err := strconv.Atoi(string(r.Value))
					if err != nil {
						t.Errorf("counter holds %q: %v", r.Value, err)
						return
					}
					_, err = s.PutRecord(ctx, "counter", "c", []byte(strconv.Itoa(n+1)), r.Revision)
					if errors.Is(err, store.ErrConflict) {
						continue
					}
					if err != nil {
						t.Errorf("PutRecord: %v", err)
						return
					}
					break
				}
			}
		})
	}
	wg.Wait()
	r, err := s.GetRecord(ctx, "counter", "c")
	if err != nil {
		t.Fatalf("GetRecord: %v", err)
	}
	if got, want := string(r.Value), strconv.Itoa(workers*incs); got != want {
		t.Errorf("counter after %d CAS increments: got %s, want %s (lost updates)", workers*incs, got, want)
	}
}

func testNoAliasing(t *testing.T, s store.Store) {
	ctx := t.Context()
	scribble := func(b []byte) {
		for i := range b {
			b[i] = '!'
		}
	}
	in := []byte("sealed-original")
	if _, err := s.Put(ctx, "a", store.PutOptions{}, fixed(in)); err != nil {
		t.Fatalf("Put: %v", err)
	}
	scribble(in)
	out := get(t, s, "a", 0).Envelope
	if string(out) != "sealed-original" {
		t.Fatalf("changing the slice seal returned changed the store: got %q", out)
	}
	scribble(out)
	if got := get(t, s, "a", 1).Envelope; string(got) != "sealed-original" {
		t.Errorf("changing a returned Envelope changed the store: got %q", got)
	}

	// fn may use its argument as scratch space, even when it then fails.
	_, err := s.Rewrap(ctx, func(_ string, _ int, e []byte) ([]byte, error) {
		scribble(e)
		return nil, errRewrap
	})
	wantErr(t, "Rewrap", err, errRewrap)
	if got := get(t, s, "a", 1).Envelope; string(got) != "sealed-original" {
		t.Errorf("changing the envelope passed to a failing RewrapFunc changed the store: got %q", got)
	}

	var kept [][]byte
	if _, err := s.Rewrap(ctx, func(_ string, _ int, e []byte) ([]byte, error) {
		r := []byte("sealed-rewrapped")
		kept = append(kept, r)
		return r, nil
	}); err != nil {
		t.Fatalf("Rewrap: %v", err)
	}
	for _, b := range kept {
		scribble(b)
	}
	if got := get(t, s, "a", 0).Envelope; string(got) != "sealed-rewrapped" {
		t.Errorf("changing slices after Rewrap changed the store: got %q", got)
	}

	val := []byte("value")
	if _, err := s.PutRecord(ctx, "k", "r", val, 0); err != nil {
		t.Fatalf("PutRecord: %v", err)
	}
	scribble(val)
	r, err := s.GetRecord(ctx, "k", "r")
	if err != nil || string(r.Value) != "value" {
		t.Fatalf("changing the value passed to PutRecord changed the store: got %q, %v", r.Value, err)
	}
	scribble(r.Value)
	list, err := s.ListRecords(ctx, "k")
	if err != nil || len(list) != 1 || string(list[0].Value) != "value" {
		t.Fatalf("changing a value from GetRecord changed the store: got %+v, %v", list, err)
	}
	scribble(list[0].Value)
	if r, err := s.GetRecord(ctx, "k", "r"); err != nil || string(r.Value) != "value" {
		t.Errorf("changing a value from ListRecords changed the store: got %q, %v", r.Value, err)
	}
}

func testCanceledContext(t *testing.T, s store.Store) {
	put(t, s, "x")
	putRecord(t, s, "k", "r", "v", 0)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	sealed := false
	_, err := s.Put(ctx, "x", store.PutOptions{}, func(v int) ([]byte, error) {
		sealed = true
		return env("x", v), nil
	})
	wantErr(t, "Put with a cancelled context", err, context.Canceled)
	if got := versions(t, s, "x"); !slices.Equal(got, []int{1}) {
		t.Errorf("Put with a cancelled context stored something: History got %v, want [1] (seal called: %v)", got, sealed)
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"Get", func() error { _, err := s.Get(ctx, "x", 0); return err }},
		{"List", func() error { _, err := s.List(ctx, ""); return err }},
		{"History", func() error { _, err := s.History(ctx, "x"); return err }},
		{"Hide", func() error { return s.Hide(ctx, "x") }},
		{"Destroy", func() error { return s.Destroy(ctx, "x") }},
		{"Rewrap", func() error {
			_, err := s.Rewrap(ctx, func(_ string, _ int, e []byte) ([]byte, error) { return e, nil })
			return err
		}},
		{"GetRecord", func() error { _, err := s.GetRecord(ctx, "k", "r"); return err }},
		{"PutRecord", func() error { _, err := s.PutRecord(ctx, "k", "r", nil, store.AnyRevision); return err }},
		{"DeleteRecord", func() error { return s.DeleteRecord(ctx, "k", "r", store.AnyRevision) }},
		{"ListRecords", func() error { _, err := s.ListRecords(ctx, "k"); return err }},
	}
	for _, c := range calls {
		wantErr(t, c.name+" with a cancelled context", c.call(), context.Canceled)
	}
	get(t, s, "x", 0)
	wantRecord(t, s, "k", "r", "v", mustRev(t, s, "k", "r"))
}

func mustRev(t testing.TB, s store.Store, kind, key string) int64 {
	t.Helper()
	r, err := s.GetRecord(t.Context(), kind, key)
	if err != nil {
		t.Fatalf("GetRecord(%s, %s): %v", kind, key, err)
	}
	return r.Revision
}

func testClosed(t *testing.T, s store.Store) {
	put(t, s, "x")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := t.Context()
	calls := []struct {
		name string
		call func() error
	}{
		{"Put", func() error { _, err := s.Put(ctx, "x", store.PutOptions{}, sealer("x")); return err }},
		{"Get", func() error { _, err := s.Get(ctx, "x", 0); return err }},
		{"List", func() error { _, err := s.List(ctx, ""); return err }},
		{"History", func() error { _, err := s.History(ctx, "x"); return err }},
		{"Hide", func() error { return s.Hide(ctx, "x") }},
		{"Destroy", func() error { return s.Destroy(ctx, "x") }},
		{"Rewrap", func() error {
			_, err := s.Rewrap(ctx, func(_ string, _ int, e []byte) ([]byte, error) { return e, nil })
			return err
		}},
		{"GetRecord", func() error { _, err := s.GetRecord(ctx, "k", "r"); return err }},
		{"PutRecord", func() error { _, err := s.PutRecord(ctx, "k", "r", nil, 0); return err }},
		{"DeleteRecord", func() error { return s.DeleteRecord(ctx, "k", "r", store.AnyRevision) }},
		{"ListRecords", func() error { _, err := s.ListRecords(ctx, "k"); return err }},
		{"Close", s.Close},
	}
	for _, c := range calls {
		wantErr(t, c.name+" after Close", c.call(), store.ErrClosed)
	}
}

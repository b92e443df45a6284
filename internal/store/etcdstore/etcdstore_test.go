package etcdstore_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/privyhq/privy/internal/store"
	"github.com/privyhq/privy/internal/store/etcdstore"
	"github.com/privyhq/privy/internal/store/storetest"
	"github.com/privyhq/privy/internal/testenv"
)

// prefixes makes each opened store's prefix unique, so that one etcd serves
// every test of the package.
var prefixes atomic.Int64

func newPrefix(t testing.TB) string {
	return fmt.Sprintf("/privy-test/%d/%s/", prefixes.Add(1), t.Name())
}

// open opens a store on endpoints under prefix and closes it when the test
// ends.
func open(t testing.TB, endpoints []string, prefix string) *etcdstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := etcdstore.Open(ctx, etcdstore.Config{Endpoints: endpoints, Prefix: prefix})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func seal(b []byte) store.SealFunc { return func(int) ([]byte, error) { return b, nil } }

// TestSingleMember runs everything that needs one etcd member against one
// member started for the whole test.
func TestSingleMember(t *testing.T) {
	c := testenv.Etcd(t, 1)
	eps := c.Endpoints()
	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store { return open(t, eps, newPrefix(t)) })
	})
	t.Run("TooLarge", func(t *testing.T) { testTooLarge(t, eps) })
	t.Run("TwoServers", func(t *testing.T) { testTwoServers(t, eps) })
	t.Run("RewrapManyBatches", func(t *testing.T) { testRewrapManyBatches(t, eps) })
	t.Run("RewrapConcurrentWrites", func(t *testing.T) { testRewrapConcurrentWrites(t, eps) })
	t.Run("RewrapExclusive", func(t *testing.T) { testRewrapExclusive(t, eps) })
	t.Run("RewrapDiesAfterCommit", func(t *testing.T) { testRewrapDiesAfterCommit(t, eps) })
	t.Run("RewrapDiesWhileStaging", func(t *testing.T) { testRewrapDiesWhileStaging(t, eps) })
	t.Run("PrefixesApart", func(t *testing.T) { testPrefixesApart(t, eps) })
	// Pausing the member goes last: it stalls everything else.
	t.Run("Deadline", func(t *testing.T) { testDeadline(t, c) })
}

func BenchmarkStore(b *testing.B) {
	c := testenv.Etcd(b, 1)
	storetest.Bench(b, func(b *testing.B) store.Store { return open(b, c.Endpoints(), newPrefix(b)) })
}

func testTooLarge(t *testing.T, eps []string) {
	s := open(t, eps, newPrefix(t))
	ctx := t.Context()
	// A recognisable value that no error may quote.
	big := bytes.Repeat([]byte("TOP-SECRET-"), etcdstore.MaxValueSize/11+1)
	_, err := s.Put(ctx, "big", store.PutOptions{}, seal(big))
	if !errors.Is(err, etcdstore.ErrTooLarge) {
		t.Fatalf("Put of %d bytes: got %v, want ErrTooLarge", len(big), err)
	}
	for _, want := range []string{`"big"`, strconv.Itoa(len(big)), strconv.Itoa(etcdstore.MaxValueSize)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Put error %q does not mention %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "TOP-SECRET") {
		t.Errorf("Put error quotes the value: %.200s", err)
	}
	if _, err := s.Get(ctx, "big", 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after a refused Put: got %v, want ErrNotFound", err)
	}

	// The limit itself fits, with the metadata, in etcd's default request.
	max := big[:etcdstore.MaxValueSize]
	vm, err := s.Put(ctx, "big", store.PutOptions{}, seal(max))
	if err != nil || vm.Size != len(max) {
		t.Fatalf("Put of exactly MaxValueSize: got %+v, %v", vm, err)
	}
	if v, err := s.Get(ctx, "big", 0); err != nil || !bytes.Equal(v.Envelope, max) {
		t.Errorf("Get of a MaxValueSize envelope: got %d bytes, %v", len(v.Envelope), err)
	}

	_, err = s.PutRecord(ctx, "k", "r", big, 0)
	if !errors.Is(err, etcdstore.ErrTooLarge) || strings.Contains(err.Error(), "TOP-SECRET") {
		t.Errorf("PutRecord of %d bytes: got %.200v, want ErrTooLarge without the value", len(big), err)
	}
	rev, err := s.PutRecord(ctx, "k", "r", max, 0)
	if err != nil || rev == 0 {
		t.Errorf("PutRecord of exactly MaxValueSize: got %d, %v", rev, err)
	}

	// A rewrap that would grow an envelope past the limit changes nothing.
	_, err = s.Rewrap(ctx, func(_ string, _ int, e []byte) ([]byte, error) { return append(e, 'x'), nil })
	if !errors.Is(err, etcdstore.ErrTooLarge) {
		t.Errorf("Rewrap growing past the limit: got %v, want ErrTooLarge", err)
	}
	if v, err := s.Get(ctx, "big", 0); err != nil || !bytes.Equal(v.Envelope, max) {
		t.Errorf("Get after a refused Rewrap: got %d bytes, %v; want the envelope unchanged", len(v.Envelope), err)
	}
}

// testTwoServers races two stores (two privy servers) on one prefix: Puts
// to one path and compare-and-swap increments of one record lose nothing.
func testTwoServers(t *testing.T, eps []string) {
	prefix := newPrefix(t)
	servers := []*etcdstore.Store{open(t, eps, prefix), open(t, eps, prefix)}
	ctx := t.Context()
	const workers, puts, incs = 4, 15, 15 // per server
	total := len(servers) * workers * puts
	opts := store.PutOptions{MaxVersions: total}
	if _, err := servers[0].PutRecord(ctx, "counter", "c", []byte("0"), 0); err != nil {
		t.Fatal(err)
	}
	versions := make(chan int, total)
	var wg sync.WaitGroup
	for si, s := range servers {
		for range workers {
			wg.Go(func() {
				for range puts {
					vm, err := s.Put(ctx, "hot", opts, func(v int) ([]byte, error) { return fmt.Appendf(nil, "v%d", v), nil })
					if err != nil {
						t.Errorf("server %d Put: %v", si, err)
						return
					}
					versions <- vm.Version
				}
			})
			wg.Go(func() {
				for range incs {
					for {
						r, err := s.GetRecord(ctx, "counter", "c")
						if err != nil {
							t.Errorf("server %d GetRecord: %v", si, err)
							return
						}
						n, _ := strconv.Atoi(string(r.Value))
						_, err = s.PutRecord(ctx, "counter", "c", []byte(strconv.Itoa(n+1)), r.Revision)
						if errors.Is(err, store.ErrConflict) {
							continue
						}
						if err != nil {
							t.Errorf("server %d PutRecord: %v", si, err)
							return
						}
						break
					}
				}
			})
		}
	}
	wg.Wait()
	close(versions)
	var got []int
	for v := range versions {
		got = append(got, v)
	}
	slices.Sort(got)
	want := make([]int, total)
	for i := range want {
		want[i] = i + 1
	}
	if !slices.Equal(got, want) {
		t.Errorf("Puts from two servers: got versions %v, want each of 1..%d once", got, total)
	}
	for si, s := range servers {
		h, err := s.History(ctx, "hot")
		if err != nil || len(h) != total {
			t.Errorf("server %d History: got %d versions, %v; want %d", si, len(h), err, total)
		}
		for _, v := range []int{1, total} {
			if got, err := s.Get(ctx, "hot", v); err != nil || string(got.Envelope) != fmt.Sprintf("v%d", v) {
				t.Errorf("server %d Get(hot, %d): got %q, %v", si, v, got.Envelope, err)
			}
		}
		r, err := s.GetRecord(ctx, "counter", "c")
		if want := strconv.Itoa(len(servers) * workers * incs); err != nil || string(r.Value) != want {
			t.Errorf("server %d counter: got %q, %v; want %s (lost updates)", si, r.Value, err, want)
		}
	}
	// What one server does, the other sees at once.
	if err := servers[0].Hide(ctx, "hot"); err != nil {
		t.Fatal(err)
	}
	if _, err := servers[1].Get(ctx, "hot", 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get on server 1 after Hide on server 0: got %v, want ErrNotFound", err)
	}
}

// env is the envelope these tests store for a path and version.
func env(path string, v int, size int) []byte {
	b := fmt.Appendf(nil, "sealed(%s#%d)", path, v)
	return append(b, bytes.Repeat([]byte{'.'}, max(0, size-len(b)))...)
}

func testPrefixesApart(t *testing.T, eps []string) {
	ctx := t.Context()
	a, b := open(t, eps, newPrefix(t)), open(t, eps, strings.TrimSuffix(newPrefix(t), "/"))
	if _, err := a.Put(ctx, "x", store.PutOptions{}, seal([]byte("a"))); err != nil {
		t.Fatal(err)
	}
	if _, err := a.PutRecord(ctx, "k", "r", []byte("a"), 0); err != nil {
		t.Fatal(err)
	}
	if list, err := b.List(ctx, ""); err != nil || len(list) != 0 {
		t.Errorf("List on another prefix: got %v, %v; want nothing", list, err)
	}
	if list, err := b.ListRecords(ctx, "k"); err != nil || len(list) != 0 {
		t.Errorf("ListRecords on another prefix: got %v, %v; want nothing", list, err)
	}
}

// testDeadline pauses the etcd member: calls end with their context's
// deadline, not later.
func testDeadline(t *testing.T, c *testenv.EtcdCluster) {
	s := open(t, c.Endpoints(), newPrefix(t))
	if _, err := s.Put(t.Context(), "x", store.PutOptions{}, seal([]byte("v"))); err != nil {
		t.Fatal(err)
	}
	m := c.Members[0]
	m.Pause(t)
	defer m.Resume(t)
	for _, tc := range []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Get", func(ctx context.Context) error { _, err := s.Get(ctx, "x", 0); return err }},
		{"Put", func(ctx context.Context) error {
			_, err := s.Put(ctx, "x", store.PutOptions{}, seal([]byte("v")))
			return err
		}},
		{"PutRecord", func(ctx context.Context) error { _, err := s.PutRecord(ctx, "k", "r", nil, 0); return err }},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		start := time.Now()
		err := tc.call(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s with etcd paused: got %v, want DeadlineExceeded", tc.name, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s with etcd paused took %v, want about the 300ms deadline", tc.name, d)
		}
	}
	m.Resume(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := s.Get(ctx, "x", 0); err != nil {
		t.Errorf("Get after resuming etcd: %v", err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	start := time.Now()
	_, err := etcdstore.Open(t.Context(), etcdstore.Config{Endpoints: []string{"http://127.0.0.1:1"}, DialTimeout: 300 * time.Millisecond})
	if err == nil {
		t.Fatal("Open of an endpoint nothing listens on: got nil error")
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("Open error %q does not name the endpoint", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Open took %v, want about the 300ms dial timeout", d)
	}
	if _, err := etcdstore.Open(t.Context(), etcdstore.Config{}); err == nil {
		t.Error("Open with no endpoints: got nil error")
	}
}

// TestThreeMembers runs the conformance suite against a three-member
// cluster, whose writes go through raft between processes, and then kills
// the leader while two servers write: once a new leader is elected the
// store serves again, and every acknowledged write is there.
func TestThreeMembers(t *testing.T) {
	c := testenv.Etcd(t, 3)
	eps := c.Endpoints()
	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store { return open(t, eps, newPrefix(t)) })
	})
	t.Run("LeaderKilled", func(t *testing.T) { testLeaderKilled(t, c) })
}

func testLeaderKilled(t *testing.T, c *testenv.EtcdCluster) {
	prefix := newPrefix(t)
	servers := []*etcdstore.Store{open(t, c.Endpoints(), prefix), open(t, c.Endpoints(), prefix)}
	var (
		mu    sync.Mutex
		acked = map[string]int{} // path → last acknowledged version
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	for si, s := range servers {
		wg.Go(func() {
			path := fmt.Sprintf("w/%d", si)
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
				vm, err := s.Put(ctx, path, store.PutOptions{MaxVersions: 1000}, func(v int) ([]byte, error) { return env(path, v, 0), nil })
				cancel()
				if err == nil {
					mu.Lock()
					acked[path] = vm.Version
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	leader := c.Leader(t)
	c.Members[leader].Kill()
	killed := time.Now()
	t.Logf("killed leader %s", c.Members[leader].Name)

	// Both servers write again within a few seconds of the kill.
	for si, s := range servers {
		path := fmt.Sprintf("w/x%d", si)
		for {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			_, err := s.Put(ctx, path, store.PutOptions{}, seal([]byte("after")))
			cancel()
			if err == nil {
				break
			}
			if time.Since(killed) > 10*time.Second {
				t.Fatalf("server %d: no write succeeded within 10s of killing the leader: %v", si, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("server %d writes again %v after the kill", si, time.Since(killed).Round(time.Millisecond))
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for path, v := range acked {
		for _, s := range servers {
			h, err := s.History(ctx, path)
			if err != nil {
				t.Fatalf("History(%s): %v", path, err)
			}
			// Every acknowledged version is kept, in order, with no gap.
			if len(h) < v || h[v-1].Version != v {
				t.Errorf("History(%s): got %d versions, want 1..%d acknowledged", path, len(h), v)
			}
			if got, err := s.Get(ctx, path, v); err != nil || !bytes.Equal(got.Envelope, env(path, v, 0)) {
				t.Errorf("Get(%s, %d), acknowledged: got %q, %v", path, v, got.Envelope, err)
			}
		}
	}
	t.Logf("acknowledged versions: %v", acked)
}

// TestTLS opens the store on an etcd that serves clients over TLS only and
// requires client certificates.
func TestTLS(t *testing.T) {
	c := testenv.EtcdTLS(t, 1)
	ctx := t.Context()
	s, err := etcdstore.Open(ctx, etcdstore.Config{Endpoints: c.Endpoints(), TLS: c.ClientTLS})
	if err != nil {
		t.Fatalf("Open with TLS: %v", err)
	}
	defer s.Close()
	if _, err := s.Put(ctx, "x", store.PutOptions{}, seal([]byte("v"))); err != nil {
		t.Fatalf("Put over TLS: %v", err)
	}
	// HOST:PORT without a scheme uses TLS too when it is configured.
	bare := strings.TrimPrefix(c.Endpoints()[0], "https://")
	s2, err := etcdstore.Open(ctx, etcdstore.Config{Endpoints: []string{bare}, TLS: c.ClientTLS})
	if err != nil {
		t.Fatalf("Open(%s) with TLS: %v", bare, err)
	}
	defer s2.Close()
	if v, err := s2.Get(ctx, "x", 0); err != nil || string(v.Envelope) != "v" {
		t.Errorf("Get over TLS: got %q, %v; want v", v.Envelope, err)
	}

	noCert := c.ClientTLS.Clone()
	noCert.Certificates = nil
	for name, cfg := range map[string]*tls.Config{"no TLS": nil, "no client certificate": noCert} {
		s, err := etcdstore.Open(ctx, etcdstore.Config{Endpoints: c.Endpoints(), TLS: cfg, DialTimeout: time.Second})
		if err == nil {
			s.Close()
			t.Errorf("Open with %s: got nil error, want etcd to refuse", name)
		}
	}
}

package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// benchEntry is a typical entry of a server under load.
var benchEntry = Entry{
	RequestID: "01J9ZK3Q7B5XH2M4N6P8R0S2T4",
	Actor:     "token:3f2a9c41d0e7",
	Op:        "secret.get",
	Path:      "app/web/db-password",
	Version:   3,
	Outcome:   OutcomeOK,
	Extra:     map[string]string{"image": "registry.local/web:1.4.2"},
}

// BenchmarkWriteParallel measures entries/s with many concurrent writers,
// for the Log and, side by side, for the obvious implementation it
// replaces: encoding/json, one write(2) (and one fsync) per entry under a
// mutex.
func BenchmarkWriteParallel(b *testing.B) {
	cases := []struct {
		name string
		open func(b *testing.B, path string) (Writer, func() error)
	}{
		{"log/sync=batch", openBenchLog(SyncBatch)},
		{"log/sync=none", openBenchLog(SyncNone)},
		{"baseline/sync=each", openNaive(true)},
		{"baseline/sync=none", openNaive(false)},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			w, closeFn := bc.open(b, filepath.Join(b.TempDir(), "audit.log"))
			b.SetParallelism(32) // 32 goroutines per CPU: requests in flight
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					if err := w.Write(ctx, benchEntry); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
			if err := closeFn(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

func openBenchLog(mode SyncMode) func(*testing.B, string) (Writer, func() error) {
	return func(b *testing.B, path string) (Writer, func() error) {
		l, err := Open(path, WithSync(mode))
		if err != nil {
			b.Fatal(err)
		}
		return l, l.Close
	}
}

// naiveLog is the baseline: the same chain, written one entry at a time.
type naiveLog struct {
	mu   sync.Mutex
	f    *os.File
	sync bool
	seq  uint64
	prev string
}

func openNaive(sync bool) func(*testing.B, string) (Writer, func() error) {
	return func(b *testing.B, path string) (Writer, func() error) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		return &naiveLog{f: f, sync: sync, prev: GenesisHash}, f.Close
	}
}

func (n *naiveLog) Write(_ context.Context, e Entry) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.seq++
	e.Seq, e.Time, e.Prev = n.seq, time.Now().UTC(), n.prev
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(line)
	n.prev = hex.EncodeToString(sum[:])
	if _, err := n.f.Write(append(line, '\n')); err != nil {
		return err
	}
	if n.sync {
		return n.f.Sync()
	}
	return nil
}

// BenchmarkEncode compares the hand-written encoder with encoding/json.
func BenchmarkEncode(b *testing.B) {
	e := benchEntry
	e.Seq, e.Time, e.Prev = 123456, time.Now().UTC(), GenesisHash
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = appendEntry(buf[:0], &e)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(e); err != nil {
				b.Fatal(err)
			}
		}
	})
}

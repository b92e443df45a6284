package server_test

import (
	"context"
	"crypto/rand"
	"runtime"
	"testing"

	"github.com/privyhq/privy/internal/audit"
)

// BenchmarkGetParallel reads one 1 KiB secret from 64 goroutines over the
// unix socket, with the audit log fsyncing each batch and not at all.
func BenchmarkGetParallel(b *testing.B) {
	for _, bm := range []struct {
		name string
		sync audit.SyncMode
	}{
		{"SyncNone", audit.SyncNone},
		{"SyncBatch", audit.SyncBatch},
	} {
		b.Run(bm.name, func(b *testing.B) {
			ctx := context.Background()
			e := newEnv(b, envOptions{sync: bm.sync})
			c := e.client(e.root)
			v := make([]byte, 1024)
			rand.Read(v)
			e.put(b, c, "bench/value", v)
			procs := runtime.GOMAXPROCS(0)
			b.SetParallelism((64 + procs - 1) / procs)
			b.SetBytes(int64(len(v)))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					s, err := c.GetSecret(ctx, "bench/value", 0)
					if err != nil {
						b.Error(err)
						return
					}
					if len(s.Value) != len(v) {
						b.Errorf("got %d bytes, want %d", len(s.Value), len(v))
						return
					}
				}
			})
		})
	}
}

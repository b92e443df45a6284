package storetest

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/privyhq/privy/internal/store"
)

// benchSecrets is how many secrets Bench stores before measuring reads.
const benchSecrets = 1000

// Bench runs parallel benchmarks of Get and Put. open must return a new,
// empty store for each call; Bench closes it.
func Bench(b *testing.B, open func(b *testing.B) store.Store) {
	envelope := make([]byte, 256) // about the size of a sealed password
	seal := fixed(envelope)

	b.Run("Get", func(b *testing.B) {
		s := openBench(b, open)
		for i := range benchSecrets {
			if _, err := s.Put(b.Context(), benchPath(i), store.PutOptions{}, seal); err != nil {
				b.Fatalf("Put: %v", err)
			}
		}
		var n atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := int(n.Add(1)) % benchSecrets
				if _, err := s.Get(b.Context(), benchPath(i), 0); err != nil {
					b.Errorf("Get: %v", err)
					return
				}
			}
		})
	})

	b.Run("PutManyPaths", func(b *testing.B) {
		s := openBench(b, open)
		var n atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := int(n.Add(1)) % benchSecrets
				if _, err := s.Put(b.Context(), benchPath(i), store.PutOptions{}, seal); err != nil {
					b.Errorf("Put: %v", err)
					return
				}
			}
		})
	})

	b.Run("PutSamePath", func(b *testing.B) {
		s := openBench(b, open)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Put(b.Context(), "bench/hot", store.PutOptions{}, seal); err != nil {
					b.Errorf("Put: %v", err)
					return
				}
			}
		})
	})
}

func openBench(b *testing.B, open func(b *testing.B) store.Store) store.Store {
	s := open(b)
	b.Cleanup(func() { s.Close() })
	return s
}

func benchPath(i int) string { return fmt.Sprintf("bench/app-%d/secret", i) }

package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/privyhq/privy/internal/paths"
	"github.com/privyhq/privy/internal/seal"
	"github.com/privyhq/privy/internal/store"
	"github.com/privyhq/privy/internal/store/boltstore"
)

// secretPath names the i-th benchmark secret. Zero padding makes the store's
// key order the numeric order, so a fill appends to the B+tree.
func secretPath(i int) string { return fmt.Sprintf("bench/s%07d", i) }

// fillStats describes a finished fill.
type fillStats struct {
	secrets   int
	took      time.Duration
	fileBytes int64
}

// fill stores secrets secretPath(0) … secretPath(n-1), each a sealed value
// of size random bytes, straight into the bbolt file of an initialised data
// directory whose server is not running: going through the HTTP API would
// take far longer for a million secrets. Values are sealed with the data
// directory's master key exactly as the server seals them, so the server
// reads them back as its own.
//
// boltstore group-commits concurrent Puts into one bbolt transaction (bbolt's
// Batch), so fill runs workers Puts at a time: with enough of them each
// commit carries hundreds of secrets.
func fill(ctx context.Context, dataDir string, n, size, workers int, progress io.Writer) (fillStats, error) {
	raw, err := seal.ReadKeyFile(paths.KeyFile(dataDir))
	if err != nil {
		return fillStats{}, err
	}
	key, err := seal.NewKey(raw)
	clear(raw)
	if err != nil {
		return fillStats{}, err
	}
	st, err := boltstore.Open(paths.StoreFile(dataDir))
	if err != nil {
		return fillStats{}, err
	}
	value := make([]byte, size)
	rand.Read(value)

	start := time.Now()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next, done atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				p := secretPath(i)
				_, err := st.Put(ctx, p, store.PutOptions{}, func(version int) ([]byte, error) {
					return key.Seal(p, version, value)
				})
				if err != nil {
					cancel(err)
					return
				}
				if d := done.Add(1); d%100_000 == 0 && progress != nil {
					fmt.Fprintf(progress, "bench: fill %s: %d of %d secrets after %v\n", dataDir, d, n, time.Since(start).Round(time.Second))
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if err := st.Close(); err != nil {
		return fillStats{}, err
	}
	if err := context.Cause(ctx); err != nil {
		return fillStats{}, fmt.Errorf("filling %s: %w", dataDir, err)
	}
	fi, err := os.Stat(paths.StoreFile(dataDir))
	if err != nil {
		return fillStats{}, err
	}
	return fillStats{secrets: n, took: took, fileBytes: fi.Size()}, nil
}

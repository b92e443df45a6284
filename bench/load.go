package main

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// op is one request of a benchmark. rnd belongs to the calling worker, so
// ops need no locking to pick a random path.
type op func(ctx context.Context, rnd *rand.Rand) error

// window is one measurement: warm-up first, then the measured part.
type window struct {
	warm, length time.Duration
}

// loadResult is what the measured part of one window produced.
type loadResult struct {
	ops    int             // requests that started within the window and succeeded
	length time.Duration   // the measured part's length
	lat    []time.Duration // their latencies, sorted
}

// rate is requests per second over the window.
func (r loadResult) rate() float64 { return float64(r.ops) / r.length.Seconds() }

// percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of the
// latencies, or 0 if there are none.
func (r loadResult) percentile(p float64) time.Duration {
	return percentile(r.lat, p)
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// runLoad runs workers goroutines, each calling do back to back (a closed
// loop, as a fleet of busy clients does), for w.warm and then w.length. It
// keeps the latency of every request that starts inside the measured part.
// edge, if not nil, is called as the measured part begins and as it ends, so
// the caller can read CPU counters at those moments. The first error of any
// request stops the run and is returned: a benchmark with failed requests
// measures nothing worth reporting.
func runLoad(ctx context.Context, workers int, w window, do op, edge func()) (loadResult, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	start := time.Now()
	from, to := start.Add(w.warm), start.Add(w.warm+w.length)

	var wg sync.WaitGroup
	if edge != nil {
		wg.Go(func() {
			for _, t := range []time.Time{from, to} {
				select {
				case <-time.After(time.Until(t)):
					edge()
				case <-ctx.Done():
					return
				}
			}
		})
	}
	lats := make([][]time.Duration, workers)
	for i := range workers {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(i), uint64(start.UnixNano())))
			own := make([]time.Duration, 0, 4096)
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(to) {
					break
				}
				if err := do(ctx, rnd); err != nil {
					cancel(err)
					break
				}
				if !t0.Before(from) {
					own = append(own, time.Since(t0))
				}
			}
			lats[i] = own
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return loadResult{}, err
	}
	all := slices.Concat(lats...)
	slices.Sort(all)
	return loadResult{ops: len(all), length: w.length, lat: all}, nil
}

// median returns the median of xs (the mean of the middle two for an even
// count), or 0 for none. It does not change xs.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

package main

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var out []time.Duration
		for _, n := range ns {
			out = append(out, time.Duration(n)*time.Millisecond)
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, tc := range []struct {
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 99, 7 * time.Millisecond},
		{ms(1, 2), 50, time.Millisecond},
		{ms(1, 2, 3), 50, 2 * time.Millisecond},
		{hundred, 50, 50 * time.Millisecond},
		{hundred, 99, 99 * time.Millisecond},
		{hundred, 100, 100 * time.Millisecond},
	} {
		if got := percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("percentile(%d samples, %v): got %v, want %v", len(tc.sorted), tc.p, got, tc.want)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(tc.xs); got != tc.want {
			t.Errorf("median(%v): got %v, want %v", tc.xs, got, tc.want)
		}
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1500: "-1,500"} {
		if got := count(n); got != want {
			t.Errorf("count(%d): got %q, want %q", n, got, want)
		}
	}
}

func TestRunLoad(t *testing.T) {
	edges := 0
	w := window{warm: 20 * time.Millisecond, length: 100 * time.Millisecond}
	res, err := runLoad(t.Context(), 4, w, func(ctx context.Context, rnd *rand.Rand) error {
		time.Sleep(time.Millisecond)
		return nil
	}, func() { edges++ })
	if err != nil {
		t.Fatalf("runLoad: %v", err)
	}
	if edges != 2 {
		t.Errorf("edge called %d times, want 2", edges)
	}
	// 4 workers of about 1ms requests for 100ms: far fewer than 4×100 with
	// sleep's overshoot, but some, and none counted from the warm-up.
	if res.ops < 4 || res.ops > 400 || len(res.lat) != res.ops {
		t.Errorf("got %d ops and %d latencies, want between 4 and 400, equal", res.ops, len(res.lat))
	}
	if p := res.percentile(50); p < time.Millisecond {
		t.Errorf("p50 %v, want at least the 1ms each request sleeps", p)
	}

	boom := errors.New("boom")
	_, err = runLoad(t.Context(), 4, w, func(ctx context.Context, rnd *rand.Rand) error { return boom }, nil)
	if !errors.Is(err, boom) {
		t.Errorf("runLoad with a failing op: got %v, want %v", err, boom)
	}
}

package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	tests := []struct {
		in   []float64
		want summary
	}{
		{nil, summary{}},
		{[]float64{7}, summary{med: 7, p90: 7, min: 7, max: 7}},
		{[]float64{3, 1, 2}, summary{med: 2, p90: 3, min: 1, max: 3}},
		{[]float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, summary{med: 5.5, p90: 9, min: 1, max: 10}},
		{[]float64{20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}, summary{med: 10.5, p90: 18, min: 1, max: 20}},
	}
	for _, tt := range tests {
		in := slices.Clone(tt.in)
		if got := summarize(tt.in); got != tt.want {
			t.Errorf("summarize(%v) = %+v, want %+v", tt.in, got, tt.want)
		}
		if !slices.Equal(in, tt.in) {
			t.Errorf("summarize changed its input: %v, want %v", tt.in, in)
		}
	}
}

func TestPairs(t *testing.T) {
	a := []time.Duration{4, 9, 10}
	b := []time.Duration{2, 3}
	if got, want := pairs(a, b, ratioOf), []float64{2, 3}; !slices.Equal(got, want) {
		t.Errorf("pairs(ratio) = %v, want %v", got, want)
	}
	if got, want := pairs(a, b, diffOf), []float64{2, 6}; !slices.Equal(got, want) {
		t.Errorf("pairs(diff) = %v, want %v", got, want)
	}
}

func TestRootTokenLine(t *testing.T) {
	out := "time=… level=INFO msg=\"privy server listening\"\nRoot token (dev mode, in-memory store): pvt_abc-DEF_123\nexport PRIVY_ADDR=/x.sock\n"
	m := rootTokenLine.FindStringSubmatch(out)
	if m == nil || m[1] != "pvt_abc-DEF_123" {
		t.Errorf("root token from %q = %v, want pvt_abc-DEF_123", out, m)
	}
}

func TestRunArgs(t *testing.T) {
	b := &runtimeBench{s: runtimeSettings{image: "img"}, plugin: "privy-bench-x", marker: "x"}
	privy := strings.Join(b.runArgs(true, "true"), " ")
	plain := strings.Join(b.runArgs(false, "true"), " ")
	if want := "run --rm --network none --label privy-bench=x --mount type=volume,dst=/run/secrets,volume-driver=privy-bench-x,volume-opt=profile=bench img true"; privy != want {
		t.Errorf("privy run = %q, want %q", privy, want)
	}
	if want := "run --rm --network none --label privy-bench=x --tmpfs /run/secrets img true"; plain != want {
		t.Errorf("plain run = %q, want %q", plain, want)
	}
}

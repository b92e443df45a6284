package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// Targets of the foundation milestone.
const (
	targetReadRate   = 30_000
	targetReadP99    = 2 * time.Millisecond
	targetScaleRatio = 1.5
	targetRSS        = 128 << 20
)

// report holds every measurement of a run and renders it.
type report struct {
	settings settings
	large    fillStats
	results  map[string][]measurement // by config id, in round order
	crash    crashResult
}

// med returns the median across rounds of f of a configuration.
func (r *report) med(id string, f func(measurement) float64) float64 {
	var xs []float64
	for _, m := range r.results[id] {
		xs = append(xs, f(m))
	}
	return median(xs)
}

// ratio returns the median across rounds of f(a)/f(b), pairing the two
// configurations' measurements of the same round.
func (r *report) ratio(a, b string, f func(measurement) float64) float64 {
	var xs []float64
	for i, ma := range r.results[a] {
		if i < len(r.results[b]) {
			xs = append(xs, f(ma)/f(r.results[b][i]))
		}
	}
	return median(xs)
}

func rateOf(m measurement) float64 { return m.rate }
func p50Of(m measurement) float64  { return float64(m.p50) }
func p99Of(m measurement) float64  { return float64(m.p99) }

// row is one line of the results table.
type row struct {
	bench, config, rate, p50, p99, target, met string
}

func (r *report) rows() []row {
	s := r.settings
	base := fmt.Sprintf("%s secrets, %s values, %d clients", count(s.small), size(int64(s.valueSize)), s.clients)
	dur := func(id string, f func(measurement) float64) string {
		return ms(time.Duration(r.med(id, f)))
	}
	x := func(a, b string, f func(measurement) float64) string {
		return fmt.Sprintf("%.2f×", r.ratio(a, b, f))
	}

	readRate, readP99 := r.med("reads/batch", rateOf), time.Duration(r.med("reads/batch", p99Of))
	scale := r.ratio("reads-large/batch", "reads/batch", p50Of)
	var mem memStatus // the largest seen after load, across rounds
	for _, m := range r.results["reads-large/batch"] {
		mem.RSS, mem.Anon, mem.File = max(mem.RSS, m.mem.RSS), max(mem.Anon, m.mem.Anon), max(mem.File, m.mem.File)
	}
	rows := []row{
		{"secret reads", base + ", `--audit-sync batch` (default)",
			count(int(readRate)) + " reads/s", dur("reads/batch", p50Of), ms(readP99),
			fmt.Sprintf("≥ %s reads/s and p99 ≤ %s", count(targetReadRate), ms(targetReadP99)),
			yesNo(readRate >= targetReadRate && readP99 <= targetReadP99)},
		{"secret reads", base + ", `--audit-sync none`",
			count(int(r.med("reads/none", rateOf))) + " reads/s", dur("reads/none", p50Of), dur("reads/none", p99Of),
			"— (baseline for the audit's cost)", "—"},
		{"audit cost, reads", "batch ÷ none, paired by round",
			x("reads/batch", "reads/none", rateOf), x("reads/batch", "reads/none", p50Of), x("reads/batch", "reads/none", p99Of),
			"—", "—"},
		{"HTTP baseline", base + ", `bench baseline`: net/http, same reply, no privy",
			count(int(r.med("reads/baseline", rateOf))) + " reads/s", dur("reads/baseline", p50Of), dur("reads/baseline", p99Of),
			"— (the ceiling on this machine)", "—"},
		{"privy ÷ baseline, reads", "batch ÷ baseline, paired by round",
			x("reads/batch", "reads/baseline", rateOf), x("reads/batch", "reads/baseline", p50Of), x("reads/batch", "reads/baseline", p99Of),
			"—", "—"},
		{"secret puts", base + ", `--audit-sync batch` (default)",
			count(int(r.med("puts/batch", rateOf))) + " puts/s", dur("puts/batch", p50Of), dur("puts/batch", p99Of),
			"— (reported)", "—"},
		{"secret puts", base + ", `--audit-sync none`",
			count(int(r.med("puts/none", rateOf))) + " puts/s", dur("puts/none", p50Of), dur("puts/none", p99Of),
			"—", "—"},
		{"audit cost, puts", "batch ÷ none, paired by round",
			x("puts/batch", "puts/none", rateOf), x("puts/batch", "puts/none", p50Of), x("puts/batch", "puts/none", p99Of),
			"—", "—"},
		{"scale", fmt.Sprintf("%s secrets, otherwise as the first row", count(s.large)),
			count(int(r.med("reads-large/batch", rateOf))) + " reads/s", dur("reads-large/batch", p50Of), dur("reads-large/batch", p99Of),
			"—", "—"},
		{"scale", fmt.Sprintf("read latency, %s ÷ %s secrets, paired by round", count(s.large), count(s.small)),
			x("reads-large/batch", "reads/batch", rateOf), fmt.Sprintf("%.2f×", scale), x("reads-large/batch", "reads/batch", p99Of),
			fmt.Sprintf("p50 ratio ≤ %.1f", targetScaleRatio), yesNo(scale <= targetScaleRatio)},
		{"server memory", fmt.Sprintf("VmRSS at %s secrets, after the reads", count(s.large)),
			size(mem.RSS), "", "", "≤ " + size(targetRSS), yesNo(mem.RSS <= targetRSS)},
		{"server memory", "of which RssAnon (heap, stacks)",
			size(mem.Anon), "", "", "≤ " + size(targetRSS), yesNo(mem.Anon <= targetRSS)},
		{"server memory", "of which RssFile (bbolt's mmap of the store: page cache)",
			size(mem.File), "", "", "— (reclaimable)", "—"},
	}
	crash := row{"crash recovery", fmt.Sprintf("`TestCrashRecovery`, `PRIVY_CRASH_ROUNDS=%d`", s.crashRuns),
		"", "", "", "passes", ""}
	switch r.crash.state {
	case "passed":
		crash.met = "yes"
	case "failed":
		crash.met = "no"
	case "":
		crash.met = "not run (-crash-rounds 0)"
	default:
		crash.met = r.crash.state + ": " + r.crash.detail
	}
	if r.crash.took > 0 {
		crash.rate = r.crash.took.Round(time.Second).String()
	}
	return append(rows, crash)
}

// markdown renders the results table and the details behind it.
func (r *report) markdown() string {
	var b strings.Builder
	b.WriteString("| benchmark | configuration | reads/s, puts/s or value | p50 | p99 | target | met? |\n")
	b.WriteString("|---|---|--:|--:|--:|---|---|\n")
	for _, w := range r.rows() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", w.bench, w.config, w.rate, w.p50, w.p99, w.target, w.met)
	}

	s := r.settings
	rounds := "rounds"
	if s.rounds == 1 {
		rounds = "round"
	}
	fmt.Fprintf(&b, "\nMedians of %d %s of %v each (after %v of warm-up), with closed-loop clients\n", s.rounds, rounds, s.window.length, s.window.warm)
	b.WriteString("sharing one `client.Client`. Ratios are medians of per-round ratios.\n\n")
	b.WriteString("### Every round\n\n")
	b.WriteString("| configuration | round | rate/s | p50 | p99 | server CPU | clients' CPU | server CPU per request | server page faults per request: minor / major |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, id := range []string{"reads/batch", "reads/none", "reads/baseline", "reads-large/batch", "puts/batch", "puts/none"} {
		for i, m := range r.results[id] {
			var perReq time.Duration
			var minor, major float64
			if m.ops > 0 {
				perReq = m.server.cpu / time.Duration(m.ops)
				minor, major = float64(m.server.minor)/float64(m.ops), float64(m.server.major)/float64(m.ops)
			}
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %.2f cores | %.2f cores | %v | %.2f / %.3f |\n",
				id, i+1, count(int(m.rate)), ms(m.p50), ms(m.p99),
				cores(m.server.cpu, m.window), cores(m.harnessCPU, m.window), perReq.Round(time.Microsecond), minor, major)
		}
	}

	b.WriteString("\n### Server memory with the large store\n\n")
	b.WriteString("| round | after start: VmRSS / RssAnon / RssFile | after the reads: VmRSS / RssAnon / RssFile | VmHWM |\n")
	b.WriteString("|--:|---|---|--:|\n")
	for i, m := range r.results["reads-large/batch"] {
		fmt.Fprintf(&b, "| %d | %s / %s / %s | %s / %s / %s | %s |\n", i+1,
			size(m.memIdle.RSS), size(m.memIdle.Anon), size(m.memIdle.File),
			size(m.mem.RSS), size(m.mem.Anon), size(m.mem.File), size(m.mem.HWM))
	}

	fmt.Fprintf(&b, "\nThe large store was filled with %s secrets in %v (%s/s) by `bench fill`; its file is %s.\n",
		count(r.large.secrets), r.large.took.Round(time.Second), count(int(float64(r.large.secrets)/r.large.took.Seconds())), size(r.large.fileBytes))
	if r.crash.took > 0 {
		fmt.Fprintf(&b, "TestCrashRecovery %s in %v.\n", r.crash.state, r.crash.took.Round(time.Second))
	}
	return b.String()
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// ms formats a latency in milliseconds.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + " ms"
}

// count formats n with thousands separators.
func count(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// size formats bytes in binary units.
func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d KiB", n>>10)
	}
}

// writeReport prints a benchmark's markdown report and, if out is set,
// writes it to that file too.
func writeReport(md, out string, stdout io.Writer) error {
	if out != "" {
		if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
			return fmt.Errorf("writing report: %w", err)
		}
	}
	_, err := io.WriteString(stdout, md)
	return err
}

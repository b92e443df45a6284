package main

import (
	"fmt"
	"strings"
	"time"
)

// med returns the median across rounds of f of a tool's runs (runs
// stopped at the timeout count with their time, a lower bound).
func (r *scanReport) med(id string, f func(scanRun) float64) float64 {
	var xs []float64
	for _, m := range r.runs[id] {
		xs = append(xs, f(m))
	}
	return median(xs)
}

// bound is "> " if a run of the tool was stopped at the timeout: its
// times and ratios are then lower bounds.
func (r *scanReport) bound(id string) string {
	for _, m := range r.runs[id] {
		if m.stopped {
			return "> "
		}
	}
	return ""
}

// speedup returns the median across rounds of a tool's time ÷ privy's time
// in the same round.
func (r *scanReport) speedup(id string) float64 {
	var xs []float64
	for i, m := range r.runs[id] {
		if p := r.runs["privy"]; i < len(p) {
			xs = append(xs, m.took.Seconds()/p[i].took.Seconds())
		}
	}
	return median(xs)
}

// minFound returns the fewest planted values a tool found in a round, and
// whether it has a successful run at all.
func (r *scanReport) minFound(id string) (int, bool) {
	n, ok := len(r.img.plants), false
	for _, m := range r.runs[id] {
		if !m.stopped && m.found != nil {
			n, ok = min(n, countTrue(m.found)), true
		}
	}
	return n, ok
}

// foundAlways tells whether a tool found planted value i in every round.
func (r *scanReport) foundAlways(id string, i int) string {
	runs := 0
	for _, m := range r.runs[id] {
		if m.stopped {
			continue
		}
		runs++
		if !m.found[i] {
			return "—"
		}
	}
	if runs == 0 && len(r.runs[id]) > 0 {
		return "n/a (stopped)"
	}
	if runs == 0 {
		return "n/a"
	}
	return "found"
}

func tookOf(m scanRun) float64 { return m.took.Seconds() }
func rssOf(m scanRun) float64  { return float64(m.maxRSS) }
func coresOf(m scanRun) float64 {
	return m.cpu.Seconds() / m.took.Seconds()
}

func (r *scanReport) markdown() string {
	var b strings.Builder
	img, np := r.img, len(r.img.plants)
	fmt.Fprintf(&b, "| tool | median time | MB/s of layer data | peak RSS | CPU | planted values found | speed-up: its time ÷ privy's | target | met? |\n")
	fmt.Fprintf(&b, "|---|--:|--:|--:|--:|--:|--:|---|---|\n")
	for _, t := range r.tools {
		if _, ok := r.runs[t.id]; !ok {
			continue
		}
		took := r.med(t.id, tookOf)
		lb := r.bound(t.id)
		d := time.Duration(took * float64(time.Second))
		rate := float64(img.layerBytes) / 1e6 / took
		rss, cpu, found, speed := "", "", "", ""
		if t.id != "read" {
			rss = size(int64(r.med(t.id, rssOf)))
			cpu = fmt.Sprintf("%.2f cores", r.med(t.id, coresOf))
			found = "n/a (stopped)"
			if n, ok := r.minFound(t.id); ok {
				found = fmt.Sprintf("%d of %d", n, np)
			}
		}
		if t.id != "privy" {
			speed = fmt.Sprintf("%s%.2f×", lb, r.speedup(t.id))
		}
		target, met := "—", "—"
		switch t.id {
		case "privy":
			n, _ := r.minFound(t.id)
			target = fmt.Sprintf("≥ %s MB/s, finds %d of %d", count(targetScanMBps), np, np)
			met = yesNo(rate >= targetScanMBps && n == np)
		case "trufflehog":
			target = fmt.Sprintf("privy ≥ %d× faster", targetScanSpeedup)
			met = yesNo(r.speedup(t.id) >= targetScanSpeedup)
		case "read":
			target = "— (the ceiling: reading the file, no scanning)"
		}
		rateBound := ""
		if lb != "" {
			rateBound = "< "
		}
		fmt.Fprintf(&b, "| %s | %s%s | %s%s | %s | %s | %s | %s | %s | %s |\n",
			t.label, lb, secs(d), rateBound, count(int(rate)), rss, cpu, found, speed, target, met)
	}
	rss := int64(r.med("privy", rssOf))
	fmt.Fprintf(&b, "| privy scan memory | peak RSS, %s image |  | %s |  |  |  | ≤ %s for a 5 GiB image | %s |\n",
		size(img.layerBytes), size(rss), size(targetScanRSS), yesNo(rss > 0 && rss <= targetScanRSS))

	fmt.Fprintf(&b, "\nMedians of %d rounds; in each round every tool ran once, in an order rotated from round to round. "+
		"MB/s is 10⁶ bytes of uncompressed layer data (the layer tars, %s) per second of the tool's wall-clock time, "+
		"the process started and waited for by the harness. Speed-ups are medians of per-round ratios. "+
		"A peer run that reached -peer-timeout (%v) was stopped; its times and ratios are then lower bounds (>).\n",
		r.s.rounds, count(int(img.layerBytes)), r.s.peerTimeout)

	fmt.Fprintf(&b, "\n### Planted values\n\n| value | layer | path | privy | trufflehog | gitleaks |\n|---|--:|---|---|---|---|\n")
	for i, p := range img.plants {
		fmt.Fprintf(&b, "| %s | %d | `/%s` | %s | %s | %s |\n", p.how, p.layer, p.path,
			r.foundAlways("privy", i), r.foundAlways("trufflehog", i), r.foundAlways("gitleaks", i))
	}
	fmt.Fprintf(&b, "\n\"found\": in every round. For privy, a finding of the planted value's known-values line; for the peers, "+
		"a finding whose text holds the value or the form written into the image, or is a piece (8 bytes or more) of that form.\n")

	fmt.Fprintf(&b, "\n### Every round\n\n| tool | round | time | MB/s | peak RSS | CPU | findings | planted found |\n|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, t := range r.tools {
		for i, m := range r.runs[t.id] {
			if m.stopped {
				fmt.Fprintf(&b, "| %s | %d | > %s | < %s | %s | %.2f cores |  | stopped at -peer-timeout |\n", t.id, i+1, secs(m.took),
					count(int(mbps(img.layerBytes, m.took))), size(m.maxRSS), coresOf(m))
				continue
			}
			if t.id == "read" {
				fmt.Fprintf(&b, "| %s | %d | %s | %s |  |  |  |  |\n", t.id, i+1, secs(m.took), count(int(mbps(img.layerBytes, m.took))))
				continue
			}
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %.2f cores | %s | %d of %d |\n", t.id, i+1, secs(m.took),
				count(int(mbps(img.layerBytes, m.took))), size(m.maxRSS), coresOf(m), count(m.findings), countTrue(m.found), np)
		}
	}

	fmt.Fprintf(&b, "\n### Commands\n\n")
	for _, t := range r.tools {
		fmt.Fprintf(&b, "- %s: `%s`\n", t.id, t.command)
	}
	for _, name := range []string{"trufflehog", "gitleaks"} {
		if v, ok := r.versions[name]; ok {
			fmt.Fprintf(&b, "- %s version: %s\n", name, v)
		} else {
			fmt.Fprintf(&b, "- %s: not installed, skipped\n", name)
		}
	}
	fmt.Fprintf(&b, "\nThe image: generated by `bench scan` (seed %d) in %v as a `docker save` tarball of %d layers, "+
		"%s regular files, %s of layer data: text (code, config, logs, checksums, UUIDs) and random binary files, "+
		"some gzip-compressed files, with %d planted values; %s known values in known.txt, the planted ones among them.\n",
		r.s.spec.seed, img.took.Round(time.Millisecond), len(img.layerSizes), count(img.files), size(img.layerBytes), np, count(r.s.spec.known))
	return b.String()
}

// secs formats a duration in seconds.
func secs(d time.Duration) string {
	return fmt.Sprintf("%.2f s", d.Seconds())
}

package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// scanSettings are the knobs of `bench scan`; the defaults are what
// `make bench` uses.
type scanSettings struct {
	privy, trufflehog, gitleaks string // binaries; a peer left empty is skipped
	work, out                   string
	rounds                      int
	spec                        genSpec
	peerTimeout                 time.Duration
	cpuProfile                  string // in-process profile of one scan (see scanprof.go)
}

// Targets of the scanner milestone (issue 5).
const (
	targetScanMBps    = 1000
	targetScanSpeedup = 20
	targetScanRSS     = 256 << 20
)

func scanCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var s scanSettings
	fs := flag.NewFlagSet("bench scan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&s.privy, "privy", "", "privy binary to benchmark (required)")
	fs.StringVar(&s.trufflehog, "trufflehog", "", "trufflehog binary; empty skips it")
	fs.StringVar(&s.gitleaks, "gitleaks", "", "gitleaks binary; empty skips it")
	fs.StringVar(&s.work, "work", "", "scratch directory, removed by the caller (required)")
	fs.StringVar(&s.out, "out", "", "also write the Markdown report to this file")
	fs.IntVar(&s.rounds, "rounds", 3, "measurement rounds (the report gives medians)")
	fs.Uint64Var(&s.spec.seed, "seed", 1, "seed of the generated image")
	fs.IntVar(&s.spec.layers, "layers", 20, "layers of the generated image")
	fs.Int64Var(&s.spec.bytes, "size", 1<<30, "uncompressed layer data of the generated image, in bytes")
	fs.IntVar(&s.spec.known, "known", 1000, "known values, the planted ones among them")
	fs.DurationVar(&s.peerTimeout, "peer-timeout", 3*time.Minute, "longest run of a peer tool before it counts as failed")
	fs.StringVar(&s.cpuProfile, "cpuprofile", "", "only generate the image, scan it once in-process as privy scan does, and write a CPU profile here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if s.work == "" || (s.privy == "" && s.cpuProfile == "") {
		return errors.New("bench scan: -privy and -work are required")
	}
	if s.rounds < 1 {
		return errors.New("bench scan: -rounds must be at least 1")
	}
	img, err := generateImage(s.spec, s.work)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bench: generated %s: %d layers, %d files, %s of layer data, in %v\n",
		img.archive, len(img.layerSizes), img.files, size(img.layerBytes), img.took.Round(time.Millisecond))
	if s.cpuProfile != "" {
		return profileScan(ctx, img, s.cpuProfile, stderr)
	}
	rep, err := runScanSuite(ctx, s, img, stderr)
	if err != nil {
		return err
	}
	return writeReport(rep.markdown(), s.out, stdout)
}

// scanTool is one configuration of the scanner benchmark.
type scanTool struct {
	id, label string
	command   string // for the report, with the image and files by name
	run       func(ctx context.Context, round int) (scanRun, error)
}

// scanRun is one timed run of a tool.
type scanRun struct {
	took     time.Duration
	cpu      time.Duration
	maxRSS   int64  // bytes; 0 if unknown
	found    []bool // per planted value
	findings int
	stopped  bool // ran into -peer-timeout: took is a lower bound, found unknown
}

// scanReport holds the measurements of a run of `bench scan`.
type scanReport struct {
	s        scanSettings
	img      *genImage
	tools    []scanTool
	runs     map[string][]scanRun
	versions map[string]string
}

func runScanSuite(ctx context.Context, s scanSettings, img *genImage, stderr io.Writer) (*scanReport, error) {
	rep := &scanReport{s: s, img: img, runs: map[string][]scanRun{}, versions: map[string]string{}}
	rep.tools = append(rep.tools,
		privyTool(s, img, "privy", false),
		privyTool(s, img, "privy-known", true),
		readTool(img))
	if s.trufflehog != "" {
		rep.versions["trufflehog"] = toolVersion(ctx, s.trufflehog, "--version")
		rep.tools = append(rep.tools, trufflehogTool(s, img))
	}
	if s.gitleaks != "" {
		rep.versions["gitleaks"] = toolVersion(ctx, s.gitleaks, "version")
		layers := filepath.Join(s.work, "layers")
		start := time.Now()
		if err := extractLayers(img.archive, layers); err != nil {
			return nil, err
		}
		fmt.Fprintf(stderr, "bench: extracted the layers for gitleaks into %s in %v\n", layers, time.Since(start).Round(time.Millisecond))
		rep.tools = append(rep.tools, gitleaksTool(s, img, layers))
	}
	for r := range s.rounds {
		for k := range rep.tools {
			t := rep.tools[(k+r)%len(rep.tools)]
			res, err := t.run(ctx, r)
			if err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", r+1, t.id, err)
			}
			rep.runs[t.id] = append(rep.runs[t.id], res)
			note := ""
			if res.stopped {
				note = fmt.Sprintf("(stopped at -peer-timeout %v)", s.peerTimeout)
			}
			fmt.Fprintf(stderr, "bench: round %d %-12s %8v  %7.0f MB/s  rss %s  found %d/%d  %s\n", r+1, t.id,
				res.took.Round(time.Millisecond), mbps(img.layerBytes, res.took), size(res.maxRSS),
				countTrue(res.found), len(img.plants), note)
		}
	}
	return rep, nil
}

// timed runs cmd and measures it; out receives its stdout.
func timed(ctx context.Context, timeout time.Duration, out io.Writer, name string, args ...string) (scanRun, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = childProcAttr()
	cmd.Stdout = out
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return scanRun{}, fmt.Errorf("starting %s: %w", filepath.Base(name), err)
	}
	stopRSS := watchRSS(cmd.Process.Pid)
	err := cmd.Wait()
	r := scanRun{took: time.Since(start), maxRSS: stopRSS()}
	if cmd.ProcessState != nil {
		r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		if r.maxRSS == 0 {
			r.maxRSS = maxRSS(cmd.ProcessState)
		}
	}
	if ctx.Err() != nil {
		r.stopped = true
		return r, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		err = nil // "findings" for privy and gitleaks
	}
	if err != nil {
		return r, fmt.Errorf("%s: %w: %s", filepath.Base(name), err, lastLine(stderr.String()))
	}
	return r, nil
}

func privyTool(s scanSettings, img *genImage, id string, knownOnly bool) scanTool {
	args := []string{"scan", "--known-file", img.knownFile, "--format", "json"}
	label := "privy scan, 1,000 known values + all detectors"
	if knownOnly {
		args = append(args, "--no-rules")
		label = "privy scan --no-rules, 1,000 known values only"
	}
	args = append(args, "docker-archive:"+img.archive)
	return scanTool{id: id, label: label,
		command: "privy " + strings.Join(shortArgs(args, img, s.work), " "),
		run: func(ctx context.Context, round int) (scanRun, error) {
			var out bytes.Buffer
			r, err := timed(ctx, 0, &out, s.privy, args...)
			if err != nil {
				return r, err
			}
			var rep struct {
				Findings []struct{ Kind, Secret string }
			}
			if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
				return r, fmt.Errorf("reading privy's report: %w", err)
			}
			r.findings = len(rep.Findings)
			r.found = make([]bool, len(img.plants))
			for i, p := range img.plants {
				for _, f := range rep.Findings {
					if f.Kind == "known" && strings.HasSuffix(f.Secret, fmt.Sprintf(":%d", p.line)) {
						r.found[i] = true
					}
				}
			}
			return r, nil
		}}
}

// readTool reads the tarball and nothing else: the ceiling of any scanner
// of this file on this machine.
func readTool(img *genImage) scanTool {
	return scanTool{id: "read", label: "read the tarball (baseline: no scanning)",
		command: "in the harness: read(2) of image.tar in 1 MiB blocks",
		run: func(ctx context.Context, round int) (scanRun, error) {
			start := time.Now()
			f, err := os.Open(img.archive)
			if err != nil {
				return scanRun{}, err
			}
			defer f.Close()
			buf := make([]byte, 1<<20)
			for {
				_, err := f.Read(buf)
				if err == io.EOF {
					break
				}
				if err != nil {
					return scanRun{}, err
				}
			}
			return scanRun{took: time.Since(start)}, nil
		}}
}

func trufflehogTool(s scanSettings, img *genImage) scanTool {
	args := []string{"docker", "--image", "file://" + img.archive, "--json", "--no-verification", "--no-update"}
	return scanTool{id: "trufflehog", label: "trufflehog docker (its detectors; knows no values)",
		command: "trufflehog " + strings.Join(shortArgs(args, img, s.work), " "),
		run: func(ctx context.Context, round int) (scanRun, error) {
			var out bytes.Buffer
			r, err := timed(ctx, s.peerTimeout, &out, s.trufflehog, args...)
			if err != nil || r.stopped {
				return r, err
			}
			var texts []string
			for _, line := range bytes.Split(out.Bytes(), []byte("\n")) {
				var f struct{ Raw, RawV2 string }
				if json.Unmarshal(line, &f) == nil && (f.Raw != "" || f.RawV2 != "") {
					r.findings++
					texts = append(texts, f.Raw, f.RawV2)
				}
			}
			r.found = foundIn(img.plants, texts)
			return r, nil
		}}
}

func gitleaksTool(s scanSettings, img *genImage, layers string) scanTool {
	report := filepath.Join(s.work, "gitleaks.json")
	args := []string{"dir", layers, "--no-banner", "--report-format", "json", "--report-path", report}
	return scanTool{id: "gitleaks", label: "gitleaks dir on the extracted layers (its rules; knows no values)",
		command: "gitleaks " + strings.Join(shortArgs(args, img, s.work), " "),
		run: func(ctx context.Context, round int) (scanRun, error) {
			os.Remove(report)
			r, err := timed(ctx, s.peerTimeout, io.Discard, s.gitleaks, args...)
			if err != nil || r.stopped {
				return r, err
			}
			data, err := os.ReadFile(report)
			if err != nil {
				return r, fmt.Errorf("reading gitleaks' report: %w", err)
			}
			var fs []struct{ Secret, Match string }
			if err := json.Unmarshal(data, &fs); err != nil {
				return r, fmt.Errorf("reading gitleaks' report: %w", err)
			}
			var texts []string
			for _, f := range fs {
				texts = append(texts, f.Secret, f.Match)
			}
			r.findings = len(fs)
			r.found = foundIn(img.plants, texts)
			return r, nil
		}}
}

// foundIn tells, for each planted value, whether a finding of a peer
// covers it: the finding's text holds the value or the form written into
// the image, or is a piece of at least 8 bytes of that form (a rule that
// flags part of the base64 blob has found the leak).
func foundIn(plants []plant, texts []string) []bool {
	found := make([]bool, len(plants))
	for i, p := range plants {
		for _, t := range texts {
			if t == "" {
				continue
			}
			if strings.Contains(t, p.value) || strings.Contains(t, p.written) || (len(t) >= 8 && strings.Contains(p.written, t)) {
				found[i] = true
			}
		}
	}
	return found
}

// extractLayers writes each layer of a docker save tarball into its own
// folder under dir: gitleaks reads folders, not images.
func extractLayers(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	n := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", archive, err)
		}
		if !strings.HasSuffix(hdr.Name, "/layer.tar") {
			continue
		}
		if err := extractTar(tr, filepath.Join(dir, fmt.Sprintf("layer-%02d", n))); err != nil {
			return fmt.Errorf("extracting layer %d: %w", n, err)
		}
		n++
	}
}

func extractTar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(hdr.Name)
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("entry %q leaves the layer", hdr.Name)
		}
		p := filepath.Join(dir, name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
				err = writeFileFrom(p, tr)
			}
		}
		if err != nil {
			return err
		}
	}
}

func writeFileFrom(p string, r io.Reader) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// toolVersion returns the first line of a tool's version output.
func toolVersion(ctx context.Context, bin string, args ...string) string {
	// Built from a module's source (see scripts/bench.sh), a tool does not
	// know its version; the script names the binary after it.
	if _, v, ok := strings.Cut(filepath.Base(bin), "-v"); ok {
		return "v" + v
	}
	out, _ := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	v := strings.TrimSpace(lastLine(string(out)))
	if v == "" {
		return "unknown version"
	}
	return v
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// shortArgs names the benchmark's files by their base names, for the report.
func shortArgs(args []string, img *genImage, work string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		a = strings.ReplaceAll(a, img.archive, "image.tar")
		a = strings.ReplaceAll(a, img.knownFile, "known.txt")
		out[i] = strings.ReplaceAll(a, work+"/", "")
	}
	return out
}

func mbps(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / 1e6 / d.Seconds()
}

func countTrue(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/privyhq/privy/client"
	"github.com/privyhq/privy/internal/scan"
	"github.com/privyhq/privy/internal/scan/detect"
	"github.com/privyhq/privy/internal/server"
)

// Exit codes of privy scan, which follow scanner conventions rather than
// the other commands' table.
const (
	scanExitClean    = 0
	scanExitFindings = 1
	scanExitError    = 2
)

// scanOutcome carries privy scan's exit code through cobra.
type scanOutcome struct {
	code int
	err  error
}

func (e *scanOutcome) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return fmt.Sprintf("privy scan exit status %d", e.code)
}

func (e *scanOutcome) Unwrap() error { return e.err }

func (a *app) scanCommand() *cobra.Command {
	var (
		formatFlag = "text"
		output     string
		knownFile  string
		prefix     string
		rulesFile  string
		noRules    bool
		workers    int
	)
	cmd := &cobra.Command{
		Use:   "scan IMAGE...",
		Short: "Find secrets in images: every value privy holds (and its encodings) plus detectors",
		Long: `Scan images for secrets: the values of every secret your token may read
(or those in --known-file), in raw, base64, hex, URL and JSON-escaped forms,
plus detector rules, over the image config, its history and every file of
every layer — files deleted by later layers included, and inside archives.
Findings name the layer, path and secret, never the value.

IMAGE is a name in the local Docker Engine (myapp:1), docker-archive:FILE
(a docker save tar), oci:DIR (an OCI layout) or registry:HOST/REPO:TAG.

Exit status: 0 clean, 1 findings, 2 error.`,
		Example: `  privy scan myapp:1
  privy scan --format sarif -o privy.sarif myapp:1
  privy scan --known-file values.txt docker-archive:image.tar
  privy scan --prefix app/ myapp:1`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return &scanOutcome{code: scanExitError, err: usageError{errors.New("privy scan needs at least one image (usage: privy scan IMAGE...)")}}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			fail := func(err error) error { return &scanOutcome{code: scanExitError, err: err} }
			switch formatFlag {
			case "text", "json", "sarif":
			default:
				return fail(usageError{fmt.Errorf("unknown --format %q: use text, json or sarif", formatFlag)})
			}
			opts := scan.Options{NoRules: noRules}
			opts.Walk.Workers = workers
			if rulesFile != "" {
				f, err := os.Open(rulesFile)
				if err != nil {
					return fail(fmt.Errorf("reading rules: %w", err))
				}
				user, err := detect.LoadRules(f)
				f.Close()
				if err != nil {
					return fail(fmt.Errorf("rules file %s: %w", rulesFile, err))
				}
				opts.Rules = append(detect.Builtin(), user...)
			}
			var scanned atomic.Int64
			opts.Progress = func(n int64) { scanned.Add(n) }
			known, err := a.knownValues(cmd, knownFile, prefix)
			if err != nil {
				return fail(err)
			}
			opts.Known = known
			sc, err := scan.New(opts)
			if err != nil {
				return fail(err)
			}
			if sk := sc.Skipped(); len(sk) > 0 {
				fmt.Fprintf(a.stderr, "privy: warning: %d values shorter than %d bytes cannot be scanned reliably and were skipped: %s\n",
					len(sk), scan.MinKnownLen, strings.Join(sk, ", "))
			}
			var all []scan.Finding
			var scanErrs []error
			for _, ref := range args {
				stop := a.progress(ref, &scanned)
				res, err := sc.Scan(cmd.Context(), ref)
				stop()
				if err != nil {
					// Report the images that were scanned, then fail.
					scanErrs = append(scanErrs, err)
					continue
				}
				for _, n := range res.Notes {
					fmt.Fprintf(a.stderr, "privy: note: %s: %s\n", ref, n)
				}
				fmt.Fprintf(a.stderr, "privy: scanned %s: %d layers, %d files, %d bytes, %d findings\n",
					res.Image, res.Layers, res.Files, res.Bytes, len(res.Findings))
				all = append(all, res.Findings...)
			}
			if len(scanErrs) == len(args) {
				return fail(errors.Join(scanErrs...)) // nothing to report: no file
			}
			out := a.stdout
			var file *os.File
			if output != "" {
				if file, err = os.Create(output); err != nil {
					return fail(fmt.Errorf("writing report: %w", err))
				}
				out = file
			}
			switch formatFlag {
			case "json":
				err = scan.WriteJSON(out, all)
			case "sarif":
				err = scan.WriteSARIF(out, server.Version, all)
			default:
				if len(all) == 0 && len(scanErrs) == 0 {
					_, err = fmt.Fprintln(out, "no secrets found")
				}
				if err == nil {
					err = scan.WriteText(out, all)
				}
			}
			if file != nil {
				if cerr := file.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				return fail(fmt.Errorf("writing report: %w", err))
			}
			if len(scanErrs) > 0 {
				return fail(errors.Join(scanErrs...))
			}
			if len(all) > 0 {
				return &scanOutcome{code: scanExitFindings}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&formatFlag, "format", "text", "report format: text, json or sarif")
	fl.StringVarP(&output, "output", "o", "", "write the report to this file")
	fl.StringVar(&knownFile, "known-file", "", "known values, one per line or NUL-separated (for CI without a server)")
	fl.StringVar(&prefix, "prefix", "", "known values: every secret under this prefix that the token may read")
	fl.StringVar(&rulesFile, "rules", "", "extra detector rules (YAML), added to the built-in ones")
	fl.BoolVar(&noRules, "no-rules", false, "look for known values only")
	fl.IntVar(&workers, "workers", 0, "layers scanned at once (default: number of CPUs)")
	return cmd
}

// knownValues gathers the values to look for: from a file, and from the
// server for a token (unless only a file was given).
func (a *app) knownValues(cmd *cobra.Command, knownFile, prefix string) ([]scan.Known, error) {
	var known []scan.Known
	if knownFile != "" {
		b, err := os.ReadFile(knownFile)
		if err != nil {
			return nil, fmt.Errorf("reading known values: %w", err)
		}
		known = append(known, splitKnown(b, knownFile)...)
		if prefix == "" {
			return known, nil
		}
	}
	tok, err := a.loadToken()
	if err != nil {
		return nil, err
	}
	if tok == "" {
		if knownFile == "" {
			fmt.Fprintln(a.stderr, "privy: warning: no token and no --known-file: scanning with detectors only")
		}
		return known, nil
	}
	c, err := client.New(a.serverAddr(), client.WithToken(tok))
	if err != nil {
		return nil, err
	}
	list, err := c.ListSecrets(cmd.Context(), prefix)
	if err != nil {
		return nil, fmt.Errorf("listing secrets to scan for: %w", err)
	}
	unreadable := 0
	for _, m := range list {
		s, err := c.GetSecret(cmd.Context(), m.Path, 0)
		if errors.Is(err, client.ErrPermissionDenied) {
			unreadable++
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s to scan for it: %w", m.Path, err)
		}
		known = append(known, scan.Known{Name: m.Path, Value: s.Value})
	}
	if unreadable > 0 {
		fmt.Fprintf(a.stderr, "privy: warning: %d secrets under %q are listable but not readable by this token and were not scanned for\n", unreadable, prefix)
	}
	return known, nil
}

// splitKnown splits a known-values file: NUL-separated if it holds a NUL,
// else one value per line.
func splitKnown(b []byte, name string) []scan.Known {
	sep := []byte{'\n'}
	if bytes.IndexByte(b, 0) >= 0 {
		sep = []byte{0}
	}
	var out []scan.Known
	for i, v := range bytes.Split(b, sep) {
		v = bytes.TrimSuffix(v, []byte{'\r'})
		if len(v) == 0 {
			continue
		}
		out = append(out, scan.Known{Name: name + ":" + strconv.Itoa(i+1), Value: v})
	}
	return out
}

// progress shows how much of ref has been scanned on stderr while the scan
// runs, when stderr is a terminal and the scan takes more than a moment.
// The returned func stops it and clears the line.
func (a *app) progress(ref string, scanned *atomic.Int64) func() {
	f, ok := a.stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return func() {}
	}
	base := scanned.Load()
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		start := time.Now()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		shown := false
		for {
			select {
			case <-done:
				if shown {
					fmt.Fprint(f, "\r\033[K")
				}
				return
			case <-t.C:
				if time.Since(start) < time.Second {
					continue
				}
				n := scanned.Load() - base
				secs := time.Since(start).Seconds()
				fmt.Fprintf(f, "\r\033[Kscanning %s: %.0f MB, %.0f MB/s", ref, float64(n)/1e6, float64(n)/1e6/secs)
				shown = true
			}
		}
	}()
	return func() { close(done); <-finished }
}

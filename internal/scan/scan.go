package scan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/privyhq/privy/internal/scan/detect"
	"github.com/privyhq/privy/internal/scan/image"
	"github.com/privyhq/privy/internal/scan/match"
)

// MinKnownLen is the shortest known value that is scanned for: shorter
// values match by chance too often to be a finding. They are listed in
// Result.Skipped instead.
const MinKnownLen = 8

// Known is a value privy delivered or holds, named by its secret path.
type Known struct {
	Name  string
	Value []byte
}

// Options configure a Scanner.
type Options struct {
	Known []Known
	// Rules are the detectors; nil means detect.Builtin(). Set NoRules to
	// scan for known values only (the build leak guard does).
	Rules   []*detect.Rule
	NoRules bool
	// NoFileRules turns off findings for files that are secrets by name.
	NoFileRules bool
	Walk        image.WalkOptions
	// Progress, if set, is called with the number of bytes of layer data
	// just scanned, from the scanning goroutines (it must be safe for
	// concurrent use and fast).
	Progress func(n int64)
}

// Scanner scans images for the values and rules it was built with. It is
// safe for concurrent use.
type Scanner struct {
	m       *match.Matcher
	lits    []literal // by match.Literal ID
	known   []Known
	rules   []*detect.Rule
	skipped []string
	short   [][]byte // the skipped values, masked in excerpts and created_by
	bounded []bool   // per rule: its secrets end near its keyword (see scanFile)
	maxLen  int
	opts    Options
}

// literal says what a match.Literal stands for.
type literal struct {
	known    int // index into Scanner.known, or -1
	encoding string
	rule     int // index into Scanner.rules, or -1
	length   int
	newlines int // in the literal, to find the line it starts on from its end
}

// New builds the scanner's one matcher over every known value in all its
// encodings and every rule's keywords.
func New(opts Options) (*Scanner, error) {
	s := &Scanner{opts: opts}
	switch {
	case opts.NoRules:
	case opts.Rules != nil:
		s.rules = opts.Rules
	default:
		s.rules = detect.Builtin()
	}
	builtin := map[string]bool{}
	for _, r := range detect.Builtin() {
		builtin[r.ID] = true
	}
	s.bounded = make([]bool, len(s.rules))
	for i, r := range s.rules {
		// The built-in rules' secrets end within a quarter window of their
		// keyword; a user rule's may not.
		s.bounded[i] = builtin[r.ID]
	}
	var lits []match.Literal
	add := func(b []byte, fold bool, l literal) {
		l.length = len(b)
		l.newlines = bytes.Count(b, []byte{'\n'})
		lits = append(lits, match.Literal{Bytes: b, ID: len(s.lits), Fold: fold})
		s.lits = append(s.lits, l)
	}
	for _, k := range opts.Known {
		if len(k.Value) < MinKnownLen {
			s.skipped = append(s.skipped, k.Name)
			if len(k.Value) > 0 {
				// Not scanned for, but still masked in whatever a report
				// shows around other findings.
				s.short = append(s.short, k.Value)
			}
			continue
		}
		i := len(s.known)
		s.known = append(s.known, k)
		for _, f := range match.Forms(k.Value) {
			add(f.Bytes, false, literal{known: i, encoding: f.Encoding, rule: -1})
		}
	}
	for ri, r := range s.rules {
		for _, kw := range r.Keywords {
			add([]byte(kw), true, literal{known: -1, rule: ri})
		}
	}
	sort.Strings(s.skipped)
	if len(lits) == 0 {
		return nil, errors.New("nothing to scan for: no known value of 8 bytes or more and no rules")
	}
	m, err := match.New(lits)
	if err != nil {
		return nil, fmt.Errorf("building the matcher: %w", err)
	}
	s.m = m
	s.maxLen = m.MaxLen()
	return s, nil
}

// Skipped lists the known values too short to scan for (by name).
func (s *Scanner) Skipped() []string { return s.skipped }

// Result is what one image scan found.
type Result struct {
	Image    string
	Findings []Finding
	Layers   int
	Files    int64
	Bytes    int64
	Notes    []string // nested archives that could not be read, and such
}

// Scan opens ref (see image.Open) and scans it.
func (s *Scanner) Scan(ctx context.Context, ref string) (*Result, error) {
	img, err := image.Open(ctx, ref)
	if err != nil {
		return nil, err
	}
	return s.ScanImage(ctx, img)
}

// ScanImage scans an opened image: its config, its history and every file
// of every layer.
func (s *Scanner) ScanImage(ctx context.Context, img image.Image) (*Result, error) {
	res := &Result{Image: img.Name()}

	var mu sync.Mutex
	type pending struct {
		f    image.File
		find Finding
	}
	var found []pending
	idx, err := image.Walk(ctx, img, s.opts.Walk, func(f *image.File, r io.Reader) error {
		if f.Whiteout || f.Link != "" {
			return nil
		}
		fs, n, err := s.scanFile(f, r)
		mu.Lock()
		res.Files++
		res.Bytes += n
		for _, fd := range fs {
			found = append(found, pending{f: *f, find: fd})
		}
		mu.Unlock()
		return err
	})
	if err != nil {
		return nil, err
	}
	// Config and layers after the walk: a sequential source (the engine's
	// export) has them only once its stream has been read.
	cfg, err := img.Config(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the config of %s: %w", img.Name(), err)
	}
	layers, err := img.Layers(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the layers of %s: %w", img.Name(), err)
	}
	res.Layers = len(layers)
	res.Findings = append(res.Findings, s.scanConfig(img.Name(), cfg)...)
	// A layer's created_by holds the build arguments of its RUN: shown
	// with every finding of the layer, it must not show their values.
	createdBy := make([]string, len(layers))
	for i, l := range layers {
		createdBy[i] = s.redact(l.CreatedBy)
	}
	for _, p := range found {
		fd := p.find
		fd.Image = img.Name()
		fd.Layer = idx.LayerOf(&p.f)
		if fd.Layer >= 0 && fd.Layer < len(layers) {
			fd.LayerDigest = layers[fd.Layer].DiffID.String()
			fd.CreatedBy = createdBy[fd.Layer]
		}
		fd.Present = idx.PresentFile(&p.f)
		res.Findings = append(res.Findings, fd)
	}
	for _, n := range idx.Notes() {
		res.Notes = append(res.Notes, fmt.Sprintf("%s: %v", s.redact(n.File.String()), n.Err))
	}
	Sort(res.Findings)
	return res, nil
}

// scanConfig looks at the config fields where build arguments and ENV
// values land.
func (s *Scanner) scanConfig(name string, cfg *v1.ConfigFile) []Finding {
	var out []Finding
	look := func(where, field, text string) {
		for _, fd := range s.scanText([]byte(text)) {
			fd.Where, fd.Field, fd.Layer, fd.Present = where, field, -1, true
			fd.Image = name
			out = append(out, fd)
		}
	}
	c := cfg.Config
	for i, e := range c.Env {
		look("config", "Env["+strconv.Itoa(i)+"]", e)
	}
	keys := make([]string, 0, len(c.Labels))
	for k := range c.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		look("config", "Labels["+s.redact(strconv.Quote(k))+"]", k+"="+c.Labels[k])
	}
	for i, a := range c.Cmd {
		look("config", "Cmd["+strconv.Itoa(i)+"]", a)
	}
	for i, a := range c.Entrypoint {
		look("config", "Entrypoint["+strconv.Itoa(i)+"]", a)
	}
	look("config", "User", c.User)
	look("config", "WorkingDir", c.WorkingDir)
	for i, h := range cfg.History {
		look("history", "history["+strconv.Itoa(i)+"].created_by", h.CreatedBy)
	}
	return out
}

// scanText scans one small buffer completely.
func (s *Scanner) scanText(text []byte) []Finding {
	var hits []match.Hit
	s.m.Find(text, func(h match.Hit) { hits = append(hits, h) })
	return s.findings(hits, text)
}

package scan

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Finding is one place where a secret was found. It never holds the secret:
// Excerpt is redacted.
type Finding struct {
	Image string `json:"image"`
	// Kind is "known" (a value privy holds), "rule" (a detector) or "file"
	// (a file that is a secret by its name and head).
	Kind     string `json:"kind"`
	Secret   string `json:"secret,omitempty"`   // for known: the secret's path or label
	Rule     string `json:"rule,omitempty"`     // for rule and file findings
	Encoding string `json:"encoding,omitempty"` // for known: raw, base64, hex, url, json, ...

	// Where is "config", "history" or "layer".
	Where string `json:"where"`
	Field string `json:"field,omitempty"` // for config and history, e.g. "Env[2]", "history[3].created_by"

	Layer       int      `json:"layer"` // -1 outside layers
	LayerDigest string   `json:"layer_digest,omitempty"`
	CreatedBy   string   `json:"created_by,omitempty"`
	Path        string   `json:"path,omitempty"`
	Inner       []string `json:"inner,omitempty"` // archives inside the layer, outermost first
	Line        int      `json:"line,omitempty"`
	// Present says whether the file is still in the final image; a
	// deleted file is still in its layer, and so in the image's tarball.
	Present bool   `json:"present"`
	Excerpt string `json:"excerpt,omitempty"`
	// More counts further findings of the same secret or rule in the same
	// file that were not listed, to keep reports (and memory) bounded.
	More int `json:"more,omitempty"`

	off int64 // stream offset of a detector's secret, to tell two apart
}

// Location is a human-readable place for the finding.
func (f *Finding) Location() string {
	switch f.Where {
	case "config", "history":
		return f.Field
	}
	p := "/" + f.Path
	for _, in := range f.Inner {
		p += "!/" + in
	}
	if f.Line > 0 {
		p += fmt.Sprintf(":%d", f.Line)
	}
	state := "present in the final image"
	if !f.Present {
		state = "deleted later, still in the layer"
	}
	return fmt.Sprintf("layer %d (%s) %s — %s", f.Layer, shortDigest(f.LayerDigest), p, state)
}

// What names what was found, never the value.
func (f *Finding) What() string {
	switch f.Kind {
	case "known":
		if f.Encoding != "" && f.Encoding != "raw" {
			return fmt.Sprintf("secret %s (%s-encoded)", f.Secret, f.Encoding)
		}
		return "secret " + f.Secret
	case "file":
		return "secret file (" + f.Rule + ")"
	}
	return "rule " + f.Rule
}

func shortDigest(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		return d[:12]
	}
	if d == "" {
		return "?"
	}
	return d
}

// Sort orders findings by image, where, layer, path and line.
func Sort(fs []Finding) {
	order := map[string]int{"config": 0, "history": 1, "layer": 2}
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Image != b.Image {
			return a.Image < b.Image
		}
		if order[a.Where] != order[b.Where] {
			return order[a.Where] < order[b.Where]
		}
		if a.Layer != b.Layer {
			return a.Layer < b.Layer
		}
		if a.Field != b.Field {
			return a.Field < b.Field
		}
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return a.Line < b.Line
	})
}

// WriteText writes one finding per block for a terminal.
func WriteText(w io.Writer, fs []Finding) error {
	for i := range fs {
		f := &fs[i]
		var b strings.Builder
		fmt.Fprintf(&b, "%s: %s\n  in %s\n", f.Image, f.What(), f.Location())
		if f.CreatedBy != "" {
			fmt.Fprintf(&b, "  layer created by: %s\n", truncate(f.CreatedBy, 120))
		}
		if f.Excerpt != "" {
			fmt.Fprintf(&b, "  excerpt: %s\n", f.Excerpt)
		}
		if f.More > 0 {
			fmt.Fprintf(&b, "  and %d more times in this file\n", f.More)
		}
		if _, err := io.WriteString(w, b.String()); err != nil {
			return err
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// WriteJSON writes the findings as one JSON document.
func WriteJSON(w io.Writer, fs []Finding) error {
	if fs == nil {
		fs = []Finding{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Findings []Finding `json:"findings"`
	}{fs})
}

// SARIF 2.1.0, the subset code-scanning dashboards read.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri,omitempty"`
	Version        string      `json:"version,omitempty"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID               string       `json:"id"`
	Name             string       `json:"name,omitempty"`
	ShortDescription sarifMessage `json:"shortDescription"`
	DefaultConfig    sarifConfig  `json:"defaultConfiguration"`
}

type sarifConfig struct {
	Level string `json:"level"`
}

type sarifMessage struct {
	Text string `json:"text"`
}

type sarifResult struct {
	RuleID     string            `json:"ruleId"`
	Level      string            `json:"level"`
	Message    sarifMessage      `json:"message"`
	Locations  []sarifLocation   `json:"locations"`
	Properties map[string]any    `json:"properties,omitempty"`
	Partial    map[string]string `json:"partialFingerprints,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

// sarifRuleID is the rule a finding reports under: one per detector, one
// per file rule, and one for all known values (the secret's path is in the
// message, so that a dashboard groups leaks of privy's own secrets).
func sarifRuleID(f *Finding) string {
	switch f.Kind {
	case "known":
		return "privy/known-secret"
	case "file":
		return "privy/file/" + f.Rule
	}
	return "privy/rule/" + f.Rule
}

// WriteSARIF writes a SARIF 2.1.0 log. Artifact URIs name the image, the
// layer and the path, since an image has no source file to point at.
func WriteSARIF(w io.Writer, version string, fs []Finding) error {
	rules := map[string]sarifRule{}
	run := sarifRun{Tool: sarifTool{Driver: sarifDriver{Name: "privy", Version: version}}, Results: []sarifResult{}}
	for i := range fs {
		f := &fs[i]
		id := sarifRuleID(f)
		if _, ok := rules[id]; !ok {
			desc := "a secret value held by privy found in an image"
			switch f.Kind {
			case "file":
				desc = "a file that is a secret by itself (" + f.Rule + ")"
			case "rule":
				desc = "a secret matched by the detector " + f.Rule
			}
			rules[id] = sarifRule{ID: id, Name: id, ShortDescription: sarifMessage{desc}, DefaultConfig: sarifConfig{"error"}}
		}
		uri := "image/" + url.PathEscape(strings.NewReplacer(":", "_", "/", "_").Replace(f.Image))
		switch f.Where {
		case "layer":
			uri += fmt.Sprintf("/layer/%d/%s", f.Layer, escapeSegments(f.Path))
			for _, in := range f.Inner {
				uri += "!/" + escapeSegments(in)
			}
		default:
			uri += "/config/" + url.PathEscape(f.Field)
		}
		loc := sarifLocation{PhysicalLocation: sarifPhysical{ArtifactLocation: sarifArtifact{URI: uri}}}
		if f.Line > 0 {
			loc.PhysicalLocation.Region = &sarifRegion{StartLine: f.Line}
		}
		props := map[string]any{"present": f.Present, "where": f.Where}
		if f.LayerDigest != "" {
			props["layer_digest"] = f.LayerDigest
		}
		if f.Encoding != "" {
			props["encoding"] = f.Encoding
		}
		msg := fmt.Sprintf("%s in %s", f.What(), f.Location())
		if f.More > 0 {
			props["more"] = f.More
			msg += fmt.Sprintf(" (and %d more times in this file, not listed)", f.More)
		}
		run.Results = append(run.Results, sarifResult{
			RuleID:     id,
			Level:      "error",
			Message:    sarifMessage{msg},
			Locations:  []sarifLocation{loc},
			Properties: props,
			// One alert per secret (by name, never value), encoding, place
			// and line, so that two secrets in one file stay two alerts.
			Partial: map[string]string{"privy/v1": strings.Join([]string{
				id, f.Secret, f.Rule, f.Encoding, uri, strconv.Itoa(f.Line)}, "|")},
		})
	}
	ids := make([]string, 0, len(rules))
	for id := range rules {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	run.Tool.Driver.Rules = make([]sarifRule, 0, len(ids))
	for _, id := range ids {
		run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, rules[id])
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(sarifLog{
		Schema:  "https://json.schemastore.org/sarif-2.1.0.json",
		Version: "2.1.0",
		Runs:    []sarifRun{run},
	})
}

// escapeSegments escapes each '/'-separated segment of p for a URI.
func escapeSegments(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

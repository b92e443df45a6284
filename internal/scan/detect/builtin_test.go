package detect_test

import (
	"bytes"
	"slices"
	"testing"

	"github.com/privyhq/privy/internal/scan/detect"
)

// scan finds rule's secrets in text the way the scanner does: at every
// case-insensitive hit of one of its keywords, Check on the window of
// WindowRadius bytes on each side. It returns the distinct secrets found.
func scan(r *detect.Rule, text []byte) []string {
	lower := bytes.ToLower(text)
	var found []string
	for _, kw := range r.Keywords {
		for off := 0; ; {
			i := bytes.Index(lower[off:], []byte(kw))
			if i < 0 {
				break
			}
			hit := off + i
			lo, hi := max(0, hit-detect.WindowRadius), min(len(text), hit+len(kw)+detect.WindowRadius)
			for _, m := range r.Check(text[lo:hi]) {
				if !slices.Contains(found, string(m.Secret)) {
					found = append(found, string(m.Secret))
				}
			}
			off = hit + 1
		}
	}
	return found
}

func builtin(t *testing.T) map[string]*detect.Rule {
	t.Helper()
	rules := make(map[string]*detect.Rule)
	for _, r := range detect.Builtin() {
		if rules[r.ID] != nil {
			t.Fatalf("Builtin() has id %q twice", r.ID)
		}
		rules[r.ID] = r
	}
	return rules
}

// TestBuiltinExamples runs every built-in rule on its true examples, which
// it must find through its keywords, and on its false examples, which it
// must not report anywhere in them.
func TestBuiltinExamples(t *testing.T) {
	rules := builtin(t)
	for i, ex := range examples() {
		r := rules[ex.rule]
		if r == nil {
			t.Fatalf("example %d names unknown rule %q", i, ex.rule)
		}
		if ex.want == "" {
			if got := r.Check([]byte(ex.in)); len(got) != 0 {
				t.Errorf("%s: false example %d: Check found %d secrets (first %s); want none", ex.rule, i, len(got), detect.Redact(got[0].Secret))
			}
			continue
		}
		if got := scan(r, []byte(ex.in)); len(got) != 1 || got[0] != ex.want {
			t.Errorf("%s: true example %d: found %q through the keywords; want [%q]", ex.rule, i, got, ex.want)
		}
	}
}

// TestBuiltinCoverage checks that every rule has true and false examples,
// that every keyword is exercised by a true example (a keyword no example
// uses is either dead or untested), and that each true example contains one
// of its rule's keywords, without which the scanner would never run it.
func TestBuiltinCoverage(t *testing.T) {
	trues, falses := map[string]int{}, map[string]int{}
	used := map[string]bool{}
	rules := builtin(t)
	for i, ex := range examples() {
		if ex.want == "" {
			falses[ex.rule]++
			continue
		}
		trues[ex.rule]++
		lower := bytes.ToLower([]byte(ex.in))
		hit := false
		for _, kw := range rules[ex.rule].Keywords {
			if bytes.Contains(lower, []byte(kw)) {
				used[ex.rule+"\x00"+kw], hit = true, true
			}
		}
		if !hit {
			t.Errorf("%s: true example %d holds none of the keywords %q", ex.rule, i, rules[ex.rule].Keywords)
		}
	}
	for id, r := range rules {
		if trues[id] == 0 || falses[id] == 0 {
			t.Errorf("%s: %d true and %d false examples; want at least one of each", id, trues[id], falses[id])
		}
		for _, kw := range r.Keywords {
			if !used[id+"\x00"+kw] {
				t.Errorf("%s: keyword %q occurs in no true example", id, kw)
			}
		}
	}
}

// TestBuiltinExclusive checks that each true example is reported by its own
// rule only, so that one secret does not become several findings (such as
// GITHUB_TOKEN=ghp_... as both a GitHub token and a password assignment).
func TestBuiltinExclusive(t *testing.T) {
	rules := detect.Builtin()
	for i, ex := range examples() {
		if ex.want == "" {
			continue
		}
		for _, r := range rules {
			if r.ID == ex.rule {
				continue
			}
			if got := scan(r, []byte(ex.in)); len(got) != 0 {
				t.Errorf("%s: true example %d is also reported by %s (%s)", ex.rule, i, r.ID, detect.Redact([]byte(got[0])))
			}
		}
	}
}

func TestBuiltinValid(t *testing.T) {
	for _, r := range detect.Builtin() {
		if err := detect.Validate(r); err != nil {
			t.Errorf("built-in rule %s is invalid: %v", r.ID, err)
		}
		if r.Description == "" {
			t.Errorf("built-in rule %s has no description", r.ID)
		}
	}
}

package detect_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/privyhq/privy/internal/scan/detect"
)

// FuzzCheck runs every built-in rule on random windows: Check must not
// panic, and every match must lie within the window, hold what the window
// holds there, and be reported once.
func FuzzCheck(f *testing.F) {
	for _, ex := range examples() {
		f.Add([]byte(ex.in))
	}
	f.Add([]byte{})
	f.Add([]byte("password=\x00\xff\xfe" + synth(20)))
	rules := detect.Builtin()
	f.Fuzz(func(t *testing.T, window []byte) {
		for _, r := range rules {
			var secrets [][]byte
			for _, m := range r.Check(window) {
				if m.RuleID != r.ID || m.Start < 0 || m.End > len(window) || m.Start >= m.End {
					t.Fatalf("%s: match %s [%d:%d] is not a non-empty span of the %d-byte window",
						r.ID, m.RuleID, m.Start, m.End, len(window))
				}
				if !bytes.Equal(window[m.Start:m.End], m.Secret) {
					t.Fatalf("%s: match [%d:%d] holds other bytes than the window there", r.ID, m.Start, m.End)
				}
				for _, s := range secrets {
					if bytes.Equal(s, m.Secret) {
						t.Fatalf("%s: secret at [%d:%d] reported twice", r.ID, m.Start, m.End)
					}
				}
				secrets = append(secrets, m.Secret)
				checkRedact(t, m.Secret)
			}
		}
		_ = detect.CheckFile(".npmrc", window)
		_ = detect.CheckFile("a/.docker/config.json", window)
		_ = detect.CheckFile(".kube/config", window)
	})
}

// FuzzLoadRules feeds random rules files to LoadRules: it must not panic,
// must fail only with a *LoadError, and every rule it returns must be
// valid and safe to run.
func FuzzLoadRules(f *testing.F) {
	f.Add(goodRules)
	f.Add("")
	f.Add("rules:\n  - id: x\n    keywords: [abc]\n    regex: 'abc('\n")
	f.Add("rules:\n  - &a {id: x, keywords: [abc], regex: abc}\n  - *a\n")
	f.Add("a: &a [*a]\n")
	f.Add("rules:\n  - id: x\n    keywords: &k [abc]\n    regex: '(a)bc'\n    secret_group: 1\n    allow: *k\n")
	f.Fuzz(func(t *testing.T, in string) {
		rules, err := detect.LoadRules(strings.NewReader(in))
		if err != nil {
			var le *detect.LoadError
			if !errors.As(err, &le) {
				t.Fatalf("LoadRules error %v (%T) is not a *LoadError", err, err)
			}
			return
		}
		for _, r := range rules {
			if err := detect.Validate(r); err != nil {
				t.Fatalf("LoadRules returned invalid rule %q: %v", r.ID, err)
			}
			for _, m := range r.Check([]byte(in)) {
				if m.Start < 0 || m.End > len(in) || m.Start >= m.End {
					t.Fatalf("rule %q: match [%d:%d] outside the %d-byte window", r.ID, m.Start, m.End, len(in))
				}
			}
		}
	})
}

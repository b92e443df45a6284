package detect_test

import (
	"errors"
	"regexp/syntax"
	"strings"
	"testing"

	"github.com/privyhq/privy/internal/scan/detect"
)

const goodRules = `# Rules for ACME's services.
rules:
  - id: acme-api-key
    description: ACME API key
    keywords: [ACME_]
    regex: '\b(acme_[A-Za-z0-9]{32})\b'
    secret_group: 1
    min_entropy: 3.5
    allow:
      - '^acme_0+$'
  - id: acme.webhook
    keywords:
      - hooks.acme.invalid
    regex: 'hooks\.acme\.invalid/[A-Za-z0-9]{16}'
`

func TestLoadRules(t *testing.T) {
	rules, err := detect.LoadRules(strings.NewReader(goodRules))
	if err != nil {
		t.Fatalf("LoadRules: %v", err)
	}
	if len(rules) != 2 {
		t.Fatalf("LoadRules returned %d rules; want 2", len(rules))
	}
	r := rules[0]
	if r.ID != "acme-api-key" || r.Description != "ACME API key" || r.SecretGroup != 1 || r.MinEntropy != 3.5 ||
		len(r.Keywords) != 1 || r.Keywords[0] != "acme_" || len(r.Allow) != 1 {
		t.Errorf("rule 0 = %+v; want the fields of acme-api-key, keyword lower-cased", r)
	}
	key := "acme_" + synth(32)
	if got := scan(r, []byte("ACME_KEY="+key)); len(got) != 1 || got[0] != key {
		t.Errorf("acme-api-key found %q; want [%q]", got, key)
	}
	if got := r.Check([]byte("acme_" + strings.Repeat("0", 32))); len(got) != 0 {
		t.Errorf("acme-api-key reported an allowed secret")
	}
	if rules[1].SecretGroup != 0 || rules[1].MinEntropy != 0 || rules[1].Allow != nil {
		t.Errorf("rule 1 = %+v; want defaults", rules[1])
	}
}

func TestLoadRulesEmpty(t *testing.T) {
	for _, in := range []string{"", "# nothing\n", "rules:\n", "rules: []\n", "---\n"} {
		rules, err := detect.LoadRules(strings.NewReader(in))
		if err != nil || len(rules) != 0 {
			t.Errorf("LoadRules(%q) = %d rules, %v; want none, nil", in, len(rules), err)
		}
	}
}

func TestLoadRulesErrors(t *testing.T) {
	const head = "rules:\n  - id: a-rule\n    keywords: [abc]\n" // lines 1-3
	tests := []struct {
		in   string
		line int
		msg  string // part of the message
	}{
		{head + "    regex: 'abc('\n", 4, `rule "a-rule": bad regex: error parsing regexp: missing closing )`},
		{head + "    regex: abc\n    allow: ['[z-a]']\n", 5, "bad allow: error parsing regexp: invalid character class range"},
		{"rules:\n  - id: a-rule\n    regex: abc\n", 2, `rule "a-rule": missing keyword`},
		{"rules:\n  - id: a-rule\n    regex: abc\n    keywords: []\n", 4, "missing keyword"},
		{"rules:\n  - id: a-rule\n    keywords: [ab]\n    regex: abc\n", 3, `keyword "ab" is shorter than 3 bytes`},
		{"rules:\n  - id: a-rule\n    keywords: [\"é\u00e9é\"]\n    regex: abc\n", 3, "want lower-case printable ASCII"},
		{head + "    regex: abc\n  - id: a-rule\n    keywords: [abc]\n    regex: abc\n", 5, `duplicate id "a-rule": already defined on line 2`},
		{"rules:\n  - id: jwt\n    keywords: [abc]\n    regex: abc\n", 2, `duplicate id "jwt": a built-in rule has this id`},
		{head + "    regex: abc\n    secret_group: 1\n", 5, "secret_group 1: the regex has 0 capture groups"},
		{head + "    regex: abc\n    secret_group: one\n", 5, "secret_group: want an integer"},
		{head + "    regex: abc\n    min_entropy: 9\n", 5, "min_entropy 9: want 0 to 8"},
		{head + "    regex: abc\n    min_entropy: .nan\n", 5, "min_entropy NaN"},
		{head + "    regex: 'a*'\n", 4, "regex matches the empty string"},
		{head + "    regex: abc\n    regexp: abd\n", 5, `unknown field "regexp"`},
		{head + "    regex: abc\n    regex: abd\n", 5, "regex given twice"},
		{head, 2, "missing regex"},
		{"rules:\n  - keywords: [abc]\n    regex: abc\n", 2, "rule without an id"},
		{"rules:\n  - id: Bad_ID\n    keywords: [abc]\n    regex: abc\n", 2, `id "Bad_ID"`},
		{"rules:\n  - id: [x]\n", 2, "id: want a string"},
		{"rules:\n  - just a string\n", 2, "want a rule"},
		{"rules: {}\n", 1, "rules: want a list"},
		{"rule:\n  - id: x\n", 1, `unknown field "rule"`},
		{"- id: x\n", 1, "want a mapping with a rules list"},
		{"rules: []\n---\nrules: []\n", 2, "more than one YAML document"},
	}
	for _, tt := range tests {
		_, err := detect.LoadRules(strings.NewReader(tt.in))
		var le *detect.LoadError
		if !errors.As(err, &le) {
			t.Errorf("LoadRules(%q) error = %v; want a *LoadError", tt.in, err)
			continue
		}
		if le.Line != tt.line || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("LoadRules(%q) error = %q (line %d); want line %d and %q", tt.in, err, le.Line, tt.line, tt.msg)
		}
	}
}

func TestLoadRulesBadRegexUnwraps(t *testing.T) {
	_, err := detect.LoadRules(strings.NewReader("rules:\n  - id: x\n    keywords: [abc]\n    regex: 'abc('\n"))
	var se *syntax.Error
	if !errors.As(err, &se) || se.Code != syntax.ErrMissingParen {
		t.Errorf("LoadRules error = %v; want it to wrap the *syntax.Error", err)
	}
}

func TestLoadRulesSyntaxError(t *testing.T) {
	_, err := detect.LoadRules(strings.NewReader("rules:\n  - id: x\n\tregex: x\n"))
	var le *detect.LoadError
	if !errors.As(err, &le) || le.Line != 2 || !strings.HasPrefix(err.Error(), "line 2: bad YAML: found a tab") {
		t.Errorf("LoadRules error = %v; want a *LoadError for line 2", err)
	}
}

func TestLoadRulesTooLarge(t *testing.T) {
	_, err := detect.LoadRules(strings.NewReader("# " + strings.Repeat("x", detect.MaxRulesFile)))
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("LoadRules(huge) error = %v; want too large", err)
	}
}

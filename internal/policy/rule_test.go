package policy_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/privyhq/privy/internal/policy"
)

func TestParseRule(t *testing.T) {
	tests := []struct {
		in   string
		want policy.Rule
	}{
		{"read:app/web/**", policy.Rule{Caps: policy.Read, Glob: "app/web/**"}},
		{"read,list:app/**", policy.Rule{Caps: policy.Read | policy.List, Glob: "app/**"}},
		{"admin:**", policy.Rule{Caps: policy.Admin, Glob: "**"}},
		{"all:**", policy.Rule{Caps: policy.All, Glob: "**"}},
		{"*:app", policy.Rule{Caps: policy.All, Glob: "app"}},
		{"write:a/*/c", policy.Rule{Caps: policy.Write, Glob: "a/*/c"}},
		{"delete:a/b?/c*d", policy.Rule{Caps: policy.Delete, Glob: "a/b?/c*d"}},
		{"read:**/x/**", policy.Rule{Caps: policy.Read, Glob: "**/x/**"}},
		{"read:0-9._a_z", policy.Rule{Caps: policy.Read, Glob: "0-9._a_z"}},
		{"read:.env/*.yaml", policy.Rule{Caps: policy.Read, Glob: ".env/*.yaml"}},
		{"read:*?*", policy.Rule{Caps: policy.Read, Glob: "*?*"}},
		{" read , list : app/** ", policy.Rule{Caps: policy.Read | policy.List, Glob: "app/**"}},
		{"read:" + strings.Repeat("a", policy.MaxGlobLen), policy.Rule{Caps: policy.Read, Glob: strings.Repeat("a", policy.MaxGlobLen)}},
	}
	for _, tt := range tests {
		got, err := policy.ParseRule(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseRule(%q) = %+v, %v; want %+v, nil", tt.in, got, err, tt.want)
		}
	}
}

func TestParseRuleErrors(t *testing.T) {
	tests := []struct {
		in      string
		wantErr string // a phrase the error must contain
	}{
		{"raed:app/**", `invalid rule "raed:app/**": unknown capability "raed" (valid: read, list, write, delete, admin)`},
		{"", `invalid rule "": missing ':'`},
		{"app/**", `missing ':'`},
		{":app/**", "no capabilities"},
		{"read,:app/**", "empty capability name"},
		{"read:", "empty glob"},
		{"read:  ", "empty glob"},
		{"read:/app", "empty path segment"},
		{"read:app/", "empty path segment"},
		{"read:app//x", "empty path segment"},
		{"read:/", "empty path segment"},
		{"read:app/***", `glob segment "***": ** must be a whole segment`},
		{"read:a**", `glob segment "a**": ** must be a whole segment`},
		{"read:**b/c", `glob segment "**b"`},
		{"read:App/x", `glob segment "App": character 'A' not allowed`},
		{"read:app/we b", `character ' ' not allowed`},
		{"read:a:b", `character ':' not allowed`},
		{"read::sys/tokens", `character ':' not allowed`},
		{"read:a\\b", `character '\\' not allowed`},
		{"read:a[bc]", `character '[' not allowed`},
		{"read:caf\u00e9", `character 'é' not allowed`},
		{"read:a/./b", `glob segment "." is not allowed`},
		{"read:../b", `glob segment ".." is not allowed`},
		{"read:" + strings.Repeat("a", policy.MaxGlobLen+1), "glob is 257 bytes long (max 256)"},
	}
	for _, tt := range tests {
		got, err := policy.ParseRule(tt.in)
		if err == nil {
			t.Errorf("ParseRule(%q) = %+v, nil; want an error containing %q", tt.in, got, tt.wantErr)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ParseRule(%q) error = %q, want one containing %q", tt.in, err, tt.wantErr)
		}
		if !strings.HasPrefix(err.Error(), "invalid rule ") {
			t.Errorf("ParseRule(%q) error = %q, want it to start with %q", tt.in, err, "invalid rule ")
		}
		var re *policy.RuleError
		if !errors.As(err, &re) || re.Rule != tt.in {
			t.Errorf("ParseRule(%q) error %v is not a *RuleError naming the rule", tt.in, err)
		}
		if !errors.Is(err, policy.ErrInvalid) {
			t.Errorf("ParseRule(%q) error %v does not match ErrInvalid", tt.in, err)
		}
	}
}

func TestRuleErrorClipsLongRules(t *testing.T) {
	_, err := policy.ParseRule("read:" + strings.Repeat("x/", 10000))
	if err == nil {
		t.Fatal("ParseRule of a 20005-byte rule succeeded")
	}
	if got := len(err.Error()); got > 300 {
		t.Errorf("error message is %d bytes long, want at most 300: %q", got, err)
	}
}

func TestRuleStringRoundTrip(t *testing.T) {
	for _, s := range []string{"read:a", "read,list:app/**", "admin:**", "all:x/*/y", "list,write,delete:**/a?"} {
		r, err := policy.ParseRule(s)
		if err != nil {
			t.Fatalf("ParseRule(%q): %v", s, err)
		}
		got, err := policy.ParseRule(r.String())
		if err != nil || got != r {
			t.Errorf("ParseRule(%q) = %+v, %v; want %+v", r.String(), got, err, r)
		}
	}
}

func TestRuleJSON(t *testing.T) {
	p := policy.Policy{
		{Caps: policy.Read | policy.List, Glob: "app/**"},
		{Caps: policy.Admin, Glob: "**"},
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatalf("json.Marshal(%v): %v", p, err)
	}
	if got, want := string(b), `["read,list:app/**","admin:**"]`; got != want {
		t.Errorf("json.Marshal = %s, want %s", got, want)
	}
	var back policy.Policy
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("json.Unmarshal(%s): %v", b, err)
	}
	if len(back) != len(p) || back[0] != p[0] || back[1] != p[1] {
		t.Errorf("json round trip = %+v, want %+v", back, p)
	}
}

func TestRuleJSONErrors(t *testing.T) {
	var r policy.Rule
	err := json.Unmarshal([]byte(`"raed:app/**"`), &r)
	if !errors.Is(err, policy.ErrInvalid) || !strings.Contains(err.Error(), `unknown capability "raed"`) {
		t.Errorf("json.Unmarshal of a bad rule: error = %v, want an ErrInvalid naming the capability", err)
	}
	if err := json.Unmarshal([]byte(`42`), &r); err == nil {
		t.Errorf("json.Unmarshal of a number into a Rule succeeded")
	}
	for _, bad := range []policy.Rule{
		{Caps: 0, Glob: "app/**"},
		{Caps: 1 << 6, Glob: "app/**"},
		{Caps: policy.Read, Glob: ""},
		{Caps: policy.Read, Glob: "App"},
	} {
		if b, err := json.Marshal(bad); err == nil {
			t.Errorf("json.Marshal(%+v) = %s, want an error", bad, b)
		}
	}
}

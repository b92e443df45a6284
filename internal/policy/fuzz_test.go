package policy_test

import (
	"errors"
	"testing"

	"github.com/privyhq/privy/internal/policy"
)

func FuzzParseRule(f *testing.F) {
	for _, s := range []string{
		"read:app/web/**", "read,list:app/**", "admin:**", "all:a/*/b?", "*:x",
		" write , delete : tmp/** ", "raed:app", "read:", ":", "read:a//b",
		"read:a**", "read:A", "read:.", "read:a/../b", "read,,list:a",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := policy.ParseRule(s)
		if err != nil {
			if !errors.Is(err, policy.ErrInvalid) {
				t.Errorf("ParseRule(%q) error %v does not match ErrInvalid", s, err)
			}
			return
		}
		if r.Caps == 0 || r.Caps&^policy.All != 0 {
			t.Errorf("ParseRule(%q) = %+v: capabilities out of range", s, r)
		}
		if len(r.Glob) > policy.MaxGlobLen {
			t.Errorf("ParseRule(%q) accepted a %d-byte glob", s, len(r.Glob))
		}
		back, err := policy.ParseRule(r.String())
		if err != nil || back != r {
			t.Errorf("ParseRule(%q) = %+v, but ParseRule(%q) = %+v, %v", s, r, r.String(), back, err)
		}
		text, err := r.MarshalText()
		if err != nil || string(text) != r.String() {
			t.Errorf("%+v.MarshalText() = %q, %v; want %q", r, text, err, r.String())
		}
	})
}

func FuzzMatch(f *testing.F) {
	for _, tt := range matchTests {
		f.Add(tt.glob, tt.path)
	}
	f.Fuzz(func(t *testing.T, glob, path string) {
		// ParseRule trims space, so a glob is valid as it stands only if
		// it comes back unchanged.
		r, err := policy.ParseRule("read:" + glob)
		got := policy.Match(glob, path)
		if err != nil || r.Glob != glob {
			if got {
				t.Errorf("Match(%q, %q) = true for an invalid glob", glob, path)
			}
			return
		}
		if want := refMatch(glob, path); got != want {
			t.Errorf("Match(%q, %q) = %v, reference says %v", glob, path, got, want)
		}
	})
}

package store_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/privyhq/privy/internal/store"
)

func TestValidatePath(t *testing.T) {
	tests := []struct {
		path    string
		ok      bool
		wantMsg string // substring of the error message when !ok
	}{
		{"a", true, ""},
		{"app/db-password", true, ""},
		{"team.one/app_2/key-3", true, ""},
		{"...", true, ""},
		{"a/.b/c.", true, ""},
		{"0/1/2/3/4/5/6/7/8/9", true, ""},
		{strings.Repeat("a", 256), true, ""},
		{strings.Repeat("ab/", 85) + "a", true, ""},

		{"", false, "path is empty"},
		{strings.Repeat("a", 257), false, "257 bytes long; the limit is 256"},
		{"/app", false, "starts with '/'"},
		{"app/", false, "ends with '/'"},
		{"/", false, "starts with '/'"},
		{"app//db", false, "empty segment"},
		{".", false, `segment "." is not allowed`},
		{"app/../etc", false, `segment ".." is not allowed`},
		{"app/./x", false, `segment "." is not allowed`},
		{"App/x", false, `segment "App" has a character outside [a-z0-9._-]; use lowercase letters, digits, '.', '_' and '-' separated by '/'`},
		{"app/my secret", false, `segment "my secret" has a character`},
		{"app\\db", false, "has a character outside"},
		{"app/\x00", false, "has a character outside"},
		{"appé", false, "has a character outside"},
		{"app:x", false, "has a character outside"},
	}
	for _, tt := range tests {
		err := store.ValidatePath(tt.path)
		if got := err == nil; got != tt.ok {
			t.Errorf("ValidatePath(%q) = %v, want ok=%v", tt.path, err, tt.ok)
			continue
		}
		if tt.ok {
			continue
		}
		if !errors.Is(err, store.ErrInvalidPath) {
			t.Errorf("ValidatePath(%q): errors.Is(%v, ErrInvalidPath) = false, want true", tt.path, err)
		}
		var pe *store.PathError
		if !errors.As(err, &pe) {
			t.Errorf("ValidatePath(%q): got %T, want *store.PathError", tt.path, err)
			continue
		}
		if pe.Path != tt.path {
			t.Errorf("ValidatePath(%q): got PathError.Path %q, want %q", tt.path, pe.Path, tt.path)
		}
		if got := err.Error(); !strings.Contains(got, tt.wantMsg) {
			t.Errorf("ValidatePath(%q): got message %q, want it to contain %q", tt.path, got, tt.wantMsg)
		}
	}
}

func TestPathErrorMessage(t *testing.T) {
	got := store.ValidatePath("App/x").Error()
	want := `invalid secret path "App/x": segment "App" has a character outside [a-z0-9._-]; use lowercase letters, digits, '.', '_' and '-' separated by '/'`
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// pathRE is an independent statement of the path grammar, without the
// "."/".." and length rules, used to cross-check ValidatePath.
var pathRE = regexp.MustCompile(`^[a-z0-9._-]+(/[a-z0-9._-]+)*$`)

func FuzzValidatePath(f *testing.F) {
	for _, s := range []string{"", "a", "app/db", "/a", "a/", "a//b", ".", "..", "a/../b", "A", "a b", "\xff", strings.Repeat("a/", 130)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		err := store.ValidatePath(p)
		segs := strings.Split(p, "/")
		want := pathRE.MatchString(p) && len(p) <= store.MaxPathLen
		for _, s := range segs {
			if s == "." || s == ".." {
				want = false
			}
		}
		if got := err == nil; got != want {
			t.Fatalf("ValidatePath(%q) = %v, want ok=%v", p, err, want)
		}
		if err != nil {
			var pe *store.PathError
			if !errors.As(err, &pe) || pe.Path != p || pe.Reason == "" || !errors.Is(err, store.ErrInvalidPath) {
				t.Fatalf("ValidatePath(%q) = %#v, want *PathError for the path with a reason", p, err)
			}
			return
		}
		if j := strings.Join(segs, "/"); j != p {
			t.Fatalf("accepted %q does not round-trip through split/join: got %q", p, j)
		}
		for _, s := range segs {
			if s == "" || s == "." || s == ".." || strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789._-") != "" {
				t.Fatalf("accepted %q has bad segment %q", p, s)
			}
		}
	})
}

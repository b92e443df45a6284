package policy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/privyhq/privy/internal/policy"
)

var matchTests = []struct {
	glob, path string
	want       bool
}{
	// Literals.
	{"app", "app", true},
	{"app", "ap", false},
	{"app", "apps", false},
	{"app/web", "app/web", true},
	{"app/web", "app/web/x", false},
	{"app/web", "app", false},
	{"app/web", "app/wep", false},

	// Empty path: zero segments, matched only by globs of "**"s.
	{"**", "", true},
	{"**/**", "", true},
	{"*", "", false},
	{"?", "", false},
	{"app", "", false},
	{"app/**", "", false},
	{"**/app", "", false},

	// '*' within a segment, never across '/'.
	{"*", "app", true},
	{"*", "app/web", false},
	{"app/*", "app/web", true},
	{"app/*", "app", false},
	{"app/*", "app/web/x", false},
	{"*/web", "app/web", true},
	{"*/web", "a/b/web", false},
	{"a*", "a", true},
	{"a*", "abc", true},
	{"a*", "ba", false},
	{"*c", "abc", true},
	{"a*c", "ac", true},
	{"a*c", "abbbc", true},
	{"a*c", "abcd", false},
	{"a*b*c", "aXbYbZc", true},
	{"a*b*c", "aXcYb", false},
	{"*.yaml", "db.yaml", true},
	{"*.yaml", "db.yml", false},
	{"*.yaml", "conf/db.yaml", false},
	{"a*/c", "ab/c", true},
	{"a*", "ab/c", false},
	{"*", "a/", false},
	{"*/*", "a/", true}, // an empty trailing segment is a segment; '*' matches it

	// '?' is exactly one character.
	{"?", "a", true},
	{"?", "", false},
	{"?", "ab", false},
	{"a?c", "abc", true},
	{"a?c", "ac", false},
	{"a?c", "a/c", false},
	{"??", "ab", true},
	{"??", "a/b", false},
	{"?", "é", true}, // one rune, two bytes
	{"??", "é", false},
	{"a?", "a\xff", true}, // one byte that is not UTF-8
	{"*?", "é", true},
	{"?*?", "é", false},

	// Trailing "**".
	{"app/**", "app", true},
	{"app/**", "app/x", true},
	{"app/**", "app/x/y", true},
	{"app/**", "apps", false},
	{"app/**", "apps/x", false},
	{"app/**", "ap", false},
	{"app/**", "other/app/x", false},
	{"app/web/**", "app/web/x/y/z", true},
	{"app/web/**", "app/webx/y", false},

	// Leading "**".
	{"**", "a", true},
	{"**", "a/b/c", true},
	{"**/z", "z", true},
	{"**/z", "a/z", true},
	{"**/z", "a/b/c/z", true},
	{"**/z", "a/b/c/zz", false},
	{"**/z", "z/a", false},
	{"**/*.pem", "a/b/key.pem", true},
	{"**/*.pem", "key.pem", true},
	{"**/*.pem", "a/key.pem/x", false},

	// Inner "**".
	{"a/**/z", "a/z", true},
	{"a/**/z", "a/b/z", true},
	{"a/**/z", "a/b/c/z", true},
	{"a/**/z", "a/b/c/y", false},
	{"a/**/z", "b/c/z", false},
	{"a/**/z", "a", false},
	{"a/**/z", "az", false},
	{"a/**/b/**/c", "a/b/c", true},
	{"a/**/b/**/c", "a/x/b/y/c", true},
	{"a/**/b/**/c", "a/x/y/c", false},
	{"a/**/**/z", "a/z", true},
	{"**/a/**", "x/a/y", true},
	{"**/a/**", "a", true},
	{"**/a/**", "x/b/y", false},
	{"**/b/*", "a/b/c/b/d", true},

	// Pseudo-paths: a segment starting with ':' is matched only by "**".
	{"**", ":sys/tokens", true},
	{"**", ":sys", true},
	{"**/tokens", ":sys/tokens", true},
	{"*/tokens", ":sys/tokens", false},
	{"*", ":sys", false},
	{"?sys", ":sys", false},
	{"*sys", ":sys", false},
	{"*?*", ":sys", false},
	{"app/*", "app/:x", false},
	{"app/**", "app/:x", true},
	{"*", "a:b", true}, // only a leading ':' makes a pseudo segment
	{"a?b", "a:b", true},

	// Invalid globs match nothing.
	{"", "", false},
	{"", "a", false},
	{"App", "App", false},
	{"a//b", "a//b", false},
	{"a/", "a/", false},
	{"a**", "a", false},
	{":sys/tokens", ":sys/tokens", false},
	{strings.Repeat("*", policy.MaxGlobLen+1), "a", false},
}

func TestMatch(t *testing.T) {
	for _, tt := range matchTests {
		if got := policy.Match(tt.glob, tt.path); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.glob, tt.path, got, tt.want)
		}
	}
}

// TestMatchWorstCase checks that globs full of wildcards against long paths
// that almost match finish quickly, where naive backtracking would take
// exponential time.
func TestMatchWorstCase(t *testing.T) {
	tests := []struct {
		name, glob, path string
		want             bool
	}{
		{
			name: "many **",
			glob: strings.Repeat("**/a/", 40) + "b",
			path: strings.Repeat("a/", 5000) + "c",
		},
		{
			name: "many *",
			glob: strings.Repeat("*a", 120) + "b",
			path: strings.Repeat("a", 50000),
		},
		{
			name: "many * in many segments",
			glob: strings.Repeat("**/*a*a*/", 20) + "b",
			path: strings.Repeat("aaaaaaaa/", 2000) + "c",
		},
		{
			name: "many ** matching",
			glob: strings.Repeat("**/", 80) + "b",
			path: strings.Repeat("a/", 5000) + "b",
			want: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := policy.ParseRule("read:" + tt.glob); err != nil {
				t.Fatalf("glob is invalid: %v", err)
			}
			start := time.Now()
			if got := policy.Match(tt.glob, tt.path); got != tt.want {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Match took %v, want well under a second", d)
			}
		})
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		policy.Match("a/**/b*/?/**", "a/x/y/bz/q/r/s")
		policy.Match("**/*.pem", "a/b/c/key.pem")
	})
	if allocs != 0 {
		t.Errorf("Match allocates %v times per run, want 0", allocs)
	}
}

func BenchmarkMatch(b *testing.B) {
	for b.Loop() {
		policy.Match("app/**/db-*/?", "app/web/eu/db-main/x")
	}
}

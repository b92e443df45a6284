package detect_test

import (
	"bytes"
	"math"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/privyhq/privy/internal/scan/detect"
)

func TestEntropy(t *testing.T) {
	tests := []struct {
		in   string
		want float64
	}{
		{"", 0},
		{"aaaa", 0},
		{"ab", 1},
		{"abcd", 2},
		{"aabb", 1},
		{cycle(alnum, 62), math.Log2(62)},
		{cycle(b64, 64*4), 6},
	}
	for _, tt := range tests {
		if got := detect.Entropy([]byte(tt.in)); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("Entropy(%q) = %v; want %v", tt.in, got, tt.want)
		}
	}
}

func TestRedact(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", "****"},
		{"hunter2", "****"},
		{"elevenchars", "****"},
		{"twelve-chars", "twel…(12 bytes)"},
		{"AKIA" + synth(16), "AKIA…(20 bytes)"},
		{"\x1b[31mred-and-more", "?[31…(17 bytes)"},
	}
	for _, tt := range tests {
		if got := detect.Redact([]byte(tt.in)); got != tt.want {
			t.Errorf("Redact(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

// TestRedactShowsAtMostFour checks, on random secrets of every length up
// to 64, that the excerpt holds no more than 4 bytes of the secret: its
// text other than the first 4 bytes is the fixed "…(N bytes)".
func TestRedactShowsAtMostFour(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 64; n++ {
		for range 20 {
			secret := make([]byte, n)
			for i := range secret {
				secret[i] = byte(rng.UintN(256))
			}
			checkRedact(t, secret)
		}
	}
}

func checkRedact(t *testing.T, secret []byte) {
	t.Helper()
	got := detect.Redact(secret)
	if len(secret) < detect.RedactMin {
		if got != "****" {
			t.Errorf("Redact(%d bytes) = %q; want ****", len(secret), got)
		}
		return
	}
	head, rest, ok := strings.Cut(got, "…")
	if !ok || len(head) != 4 || rest != "("+itoa(len(secret))+" bytes)" {
		t.Errorf("Redact(%d bytes) = %q; want 4 bytes, then …(%d bytes)", len(secret), got, len(secret))
	}
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

func TestCheck(t *testing.T) {
	r := &detect.Rule{
		ID:          "test-rule",
		Keywords:    []string{"tok_"},
		Pattern:     regexp.MustCompile(`\b(tok_([a-z0-9]{8}))\b`),
		SecretGroup: 2,
		Allow:       []*regexp.Regexp{regexp.MustCompile(`^0+$`)},
	}
	window := []byte("a tok_abcd1234 b tok_00000000 c tok_abcd1234 d tok_wxyz9876")
	got := r.Check(window)
	want := []string{"abcd1234", "wxyz9876"}
	if len(got) != len(want) {
		t.Fatalf("Check found %d secrets; want %d (%q): each distinct secret once, allowed ones dropped", len(got), len(want), want)
	}
	for i, m := range got {
		if string(m.Secret) != want[i] || m.RuleID != r.ID || !bytes.Equal(window[m.Start:m.End], m.Secret) {
			t.Errorf("match %d = %+v (%q); want secret %q at its place in the window", i, m, window[m.Start:m.End], want[i])
		}
	}
	// The match owns its secret: reusing the window does not change it.
	copy(window, bytes.Repeat([]byte("z"), len(window)))
	if string(got[0].Secret) != want[0] {
		t.Errorf("Secret changed with the window: %q", got[0].Secret)
	}
}

func TestCheckEntropy(t *testing.T) {
	r := &detect.Rule{ID: "t", Keywords: []string{"key"}, Pattern: regexp.MustCompile(`key=(\S+)`), SecretGroup: 1, MinEntropy: 3}
	if got := r.Check([]byte("key=aaaaaaaabbbbbbbb")); len(got) != 0 {
		t.Errorf("Check found a secret of entropy 1 under MinEntropy 3")
	}
	if got := r.Check([]byte("key=abcdefghijklmnop")); len(got) != 1 {
		t.Errorf("Check found %d secrets of entropy 4 under MinEntropy 3; want 1", len(got))
	}
}

func TestCheckInvalidRule(t *testing.T) {
	for _, r := range []*detect.Rule{
		{ID: "no-pattern", Keywords: []string{"abc"}},
		{ID: "bad-group", Keywords: []string{"abc"}, Pattern: regexp.MustCompile(`abc`), SecretGroup: 2},
		{ID: "negative-group", Keywords: []string{"abc"}, Pattern: regexp.MustCompile(`abc`), SecretGroup: -1},
	} {
		if got := r.Check([]byte("abc abc")); got != nil {
			t.Errorf("%s: Check = %v; want nil", r.ID, got)
		}
		if detect.Validate(r) == nil {
			t.Errorf("%s: Validate = nil; want an error", r.ID)
		}
	}
}

func TestCheckRefusesBinarySecrets(t *testing.T) {
	window := append([]byte("password="), 0x01, 0xfe, 'x', 'Q', '9', 0x00, 0x8c, 'z', 'Z', '7', 'k', 'L', 0x02, '\n')
	for _, r := range detect.Builtin() {
		if ms := r.Check(window); len(ms) != 0 {
			t.Errorf("rule %s reported a secret of binary bytes: %d matches", r.ID, len(ms))
		}
	}
}

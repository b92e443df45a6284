package seal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPromptPassphrase(t *testing.T) {
	readErr := errors.New("read failed")
	tests := []struct {
		name    string
		answers []string
		confirm bool
		want    string // "" means an error is expected
	}{
		{"once", []string{"open sesame"}, false, "open sesame"},
		{"confirmed", []string{"open sesame", "open sesame"}, true, "open sesame"},
		{"mismatch", []string{"open sesame", "open sesamf"}, true, ""},
		{"empty", []string{""}, false, ""},
		{"empty confirmed", []string{"", ""}, true, ""},
		{"read error", nil, false, ""},
		{"read error on confirm", []string{"open sesame"}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			answers := tt.answers
			read := func() ([]byte, error) {
				if len(answers) == 0 {
					return nil, readErr
				}
				a := answers[0]
				answers = answers[1:]
				return []byte(a), nil
			}
			var out bytes.Buffer
			got, err := promptPassphrase(&out, read, "Passphrase: ", tt.confirm)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("promptPassphrase = %q, want an error", got)
				}
				for _, a := range tt.answers {
					if a != "" && strings.Contains(err.Error(), a) {
						t.Errorf("error %q contains the passphrase", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("promptPassphrase: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("promptPassphrase = %q, want %q", got, tt.want)
			}
			if !strings.HasPrefix(out.String(), "Passphrase: ") {
				t.Errorf("terminal shows %q, want the prompt first", out.String())
			}
		})
	}
}

func TestPromptPassphraseNoTerminal(t *testing.T) {
	// Stand in for the controlling terminal: a missing device, and a file
	// that opens but is no terminal. Both must fail with ErrNoTerminal and
	// a hint, never block.
	saved := ttyPath
	t.Cleanup(func() { ttyPath = saved })
	for _, path := range []string{filepath.Join(t.TempDir(), "no-tty"), os.DevNull} {
		ttyPath = path
		_, err := PromptPassphrase("Passphrase: ", false)
		if !errors.Is(err, ErrNoTerminal) {
			t.Fatalf("with %s: error %v, want ErrNoTerminal", path, err)
		}
		for _, want := range []string{"--passphrase-file", "PRIVY_MASTER_KEY"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("with %s: error %q does not mention %s", path, err, want)
			}
		}
	}
}

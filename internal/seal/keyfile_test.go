package seal

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// writeFile writes content to a new file in a temp dir with exactly mode.
func writeFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // umask-proof
		t.Fatal(err)
	}
	return path
}

func testRawKey() []byte {
	raw := make([]byte, KeySize)
	for i := range raw {
		raw[i] = byte(0xf0 + i) // gives '+' and '/' in standard base64
	}
	return raw
}

func TestReadKeyFileMode(t *testing.T) {
	raw := testRawKey()
	tests := []struct {
		mode   os.FileMode
		refuse bool
	}{
		{0o600, false},
		{0o400, false},
		{0o644, true},
		{0o640, true},
		{0o604, true},
		{0o660, true},
		{0o700, false},
		{0o610, true},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			path := writeFile(t, EncodeKey(raw)+"\n", tt.mode)
			got, err := ReadKeyFile(path)
			var insecure *InsecureFileError
			if tt.refuse {
				if !errors.As(err, &insecure) {
					t.Fatalf("ReadKeyFile of mode %04o: error %v, want *InsecureFileError", tt.mode, err)
				}
				if insecure.Path != path || insecure.Mode != tt.mode {
					t.Errorf("InsecureFileError = {%s, %04o}, want {%s, %04o}", insecure.Path, insecure.Mode, path, tt.mode)
				}
				if want := "chmod 600 " + path; !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadKeyFile of mode %04o: %v", tt.mode, err)
			}
			if !bytes.Equal(got, raw) {
				t.Error("ReadKeyFile returned a different key")
			}
		})
	}
}

func TestReadKeyFileMissing(t *testing.T) {
	_, err := ReadKeyFile(filepath.Join(t.TempDir(), "no-such-key"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("error %v, want fs.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), "privy init") {
		t.Errorf("error %q does not say to run privy init", err)
	}
}

func TestReadKeyFileContent(t *testing.T) {
	raw := testRawKey()
	enc := EncodeKey(raw)
	tests := []struct {
		name    string
		content string
		ok      bool
	}{
		{"newline", enc + "\n", true},
		{"crlf", enc + "\r\n", true},
		{"no newline", enc, true},
		{"unpadded", strings.TrimRight(enc, "="), true},
		{"empty", "", false},
		{"short key", base64.StdEncoding.EncodeToString(raw[:16]) + "\n", false},
		{"long key", base64.StdEncoding.EncodeToString(append(raw, raw...)) + "\n", false},
		{"not base64", "this is not a key at all, is it?!\n", false},
		{"two lines", enc[:20] + "\n" + enc[20:] + "\n", false},
		{"too large", strings.Repeat("A", 2*maxKeyFileSize), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadKeyFile(writeFile(t, tt.content, 0o600))
			if !tt.ok {
				if err == nil {
					t.Fatal("ReadKeyFile succeeded, want an error")
				}
				if line := strings.TrimSpace(tt.content); line != "" && strings.Contains(err.Error(), line) {
					t.Errorf("error %q contains the file content", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadKeyFile: %v", err)
			}
			if !bytes.Equal(got, raw) {
				t.Error("ReadKeyFile returned a different key")
			}
		})
	}
}

func TestWriteKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc", "privy")
	path := filepath.Join(dir, "master.key")
	raw := testRawKey()
	if err := WriteKeyFile(path, raw); err != nil {
		t.Fatalf("WriteKeyFile: %v", err)
	}
	if runtime.GOOS != "windows" {
		for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != want {
				t.Errorf("mode of %s = %04o, want %04o", p, got, want)
			}
		}
	}
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(content), EncodeKey(raw)+"\n"; got != want {
		t.Errorf("file holds %d bytes, want %d bytes of base64 and a newline", len(got), len(want))
	}
	got, err := ReadKeyFile(path)
	if err != nil || !bytes.Equal(got, raw) {
		t.Errorf("ReadKeyFile after WriteKeyFile: same key %v, error %v", bytes.Equal(got, raw), err)
	}

	if err := WriteKeyFile(path, make([]byte, KeySize)); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second WriteKeyFile: error %v, want fs.ErrExist", err)
	}
	if got, _ := ReadKeyFile(path); !bytes.Equal(got, raw) {
		t.Error("second WriteKeyFile replaced the key")
	}
	other := filepath.Join(dir, "short.key")
	if err := WriteKeyFile(other, raw[:31]); err == nil {
		t.Error("WriteKeyFile of a 31-byte key succeeded")
	}
	if _, err := os.Stat(other); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("WriteKeyFile of a bad key left a file behind: %v", err)
	}
}

func TestParseKey(t *testing.T) {
	raw := testRawKey()
	std := base64.StdEncoding.EncodeToString(raw)
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"std padded", std, true},
		{"std raw", base64.RawStdEncoding.EncodeToString(raw), true},
		{"url padded", base64.URLEncoding.EncodeToString(raw), true},
		{"url raw", base64.RawURLEncoding.EncodeToString(raw), true},
		{"surrounding space", "  " + std + "\n", true},
		{"empty", "", false},
		{"short", base64.StdEncoding.EncodeToString(raw[:31]), false},
		{"16 bytes", base64.StdEncoding.EncodeToString(raw[:16]), false},
		{"long", base64.StdEncoding.EncodeToString(append(raw, 0)), false},
		{"hex", "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f", false},
		{"garbage", "correct horse battery staple!!", false},
		{"mixed alphabets", strings.Replace(std, "+", "-", 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKey(tt.in)
			if !tt.ok {
				if err == nil {
					t.Fatal("ParseKey succeeded, want an error")
				}
				if in := strings.TrimSpace(tt.in); in != "" && strings.Contains(err.Error(), in) {
					t.Errorf("error %q repeats the input", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKey: %v", err)
			}
			if !bytes.Equal(got, raw) {
				t.Error("ParseKey returned a different key")
			}
		})
	}
}

func TestEncodeKeyRoundTrip(t *testing.T) {
	raw, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseKey(EncodeKey(raw))
	if err != nil || !bytes.Equal(got, raw) {
		t.Errorf("ParseKey(EncodeKey(k)): same key %v, error %v", bytes.Equal(got, raw), err)
	}
}

func TestReadPassphraseFile(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    string // "" means an error is expected
	}{
		{"newline", "open sesame\n", "open sesame"},
		{"crlf", "open sesame\r\n", "open sesame"},
		{"none", "open sesame", "open sesame"},
		{"only one newline stripped", "open sesame\n\n", "open sesame\n"},
		{"inner space kept", " open sesame ", " open sesame "},
		{"empty", "", ""},
		{"only newline", "\n", ""},
		{"only crlf", "\r\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadPassphraseFile(writeFile(t, tt.content, 0o600))
			if tt.want == "" {
				if err == nil {
					t.Fatalf("ReadPassphraseFile succeeded, want an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadPassphraseFile: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("ReadPassphraseFile = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReadPassphraseFileRefuses(t *testing.T) {
	if _, err := ReadPassphraseFile(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: error %v, want fs.ErrNotExist", err)
	}
	if runtime.GOOS == "windows" {
		return
	}
	var insecure *InsecureFileError
	_, err := ReadPassphraseFile(writeFile(t, "open sesame\n", 0o644))
	if !errors.As(err, &insecure) {
		t.Errorf("mode 0644: error %v, want *InsecureFileError", err)
	}
	if err != nil && strings.Contains(err.Error(), "open sesame") {
		t.Errorf("error %q contains the passphrase", err)
	}
}

package seal

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

const (
	maxKeyFileSize        = 1 << 10 // a key is 44 characters of base64
	maxPassphraseFileSize = 4 << 10
)

// InsecureFileError means a key or passphrase file is open to users other
// than its owner.
type InsecureFileError struct {
	Path string
	Mode os.FileMode // permission bits of the file
}

// Error says what is wrong and how to fix it.
func (e *InsecureFileError) Error() string {
	return fmt.Sprintf("%s has mode %04o, which lets other users access it; run chmod 600 %s",
		e.Path, e.Mode.Perm(), e.Path)
}

// ReadKeyFile returns the master key stored in the file at path as one line
// of standard base64, as written by WriteKeyFile (the other forms ParseKey
// takes are accepted too). It refuses a file that
// group or others may access with an *InsecureFileError, and a missing file
// with an error wrapping fs.ErrNotExist.
func ReadKeyFile(path string) ([]byte, error) {
	content, err := readPrivateFile(path, maxKeyFileSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading master key file: %w (create one with \"privy init\")", err)
	}
	if err != nil {
		return nil, fmt.Errorf("reading master key file: %w", err)
	}
	defer clear(content)
	line := bytes.TrimSpace(content)
	if bytes.ContainsAny(line, "\r\n") {
		return nil, fmt.Errorf("reading master key file %s: want a single line of base64", path)
	}
	raw, err := decodeKey(line)
	if err != nil {
		return nil, fmt.Errorf("reading master key file %s: %w", path, err)
	}
	return raw, nil
}

// WriteKeyFile stores raw, a KeySize-byte master key, as standard base64 in
// a new file at path with mode 0600, creating its directory with mode 0700
// if needed. It never replaces an existing file: if path exists the error
// wraps fs.ErrExist.
func WriteKeyFile(path string, raw []byte) (err error) {
	if len(raw) != KeySize {
		return fmt.Errorf("writing master key file: key is %d bytes, want %d", len(raw), KeySize)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("writing master key file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing master key file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	line := make([]byte, base64.StdEncoding.EncodedLen(len(raw)), base64.StdEncoding.EncodedLen(len(raw))+1)
	defer clear(line)
	base64.StdEncoding.Encode(line, raw)
	line = append(line, '\n')
	if _, err := f.Write(line); err != nil {
		return fmt.Errorf("writing master key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing master key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing master key file: %w", err)
	}
	return nil
}

// ParseKey decodes a master key given as text, as in the PRIVY_MASTER_KEY
// environment variable: base64 in the standard or URL alphabet, padded or
// not, of exactly KeySize bytes. Surrounding white space is ignored. Errors
// never repeat the input.
func ParseKey(s string) ([]byte, error) {
	src := []byte(s)
	defer clear(src)
	raw, err := decodeKey(bytes.TrimSpace(src))
	if err != nil {
		return nil, fmt.Errorf("parsing master key: %w", err)
	}
	return raw, nil
}

// EncodeKey returns raw as standard base64, the form ReadKeyFile and
// ParseKey accept.
func EncodeKey(raw []byte) string {
	return base64.StdEncoding.EncodeToString(raw)
}

// ReadPassphraseFile returns the passphrase in the file at path, without
// one trailing newline (LF or CRLF). Like ReadKeyFile it refuses a file that
// group or others may access, and it refuses an empty passphrase.
func ReadPassphraseFile(path string) ([]byte, error) {
	content, err := readPrivateFile(path, maxPassphraseFileSize)
	if err != nil {
		return nil, fmt.Errorf("reading passphrase file: %w", err)
	}
	p := content
	if n := len(p); n > 0 && p[n-1] == '\n' {
		p = p[:n-1]
		if n := len(p); n > 0 && p[n-1] == '\r' {
			p = p[:n-1]
		}
	}
	if len(p) == 0 {
		clear(content)
		return nil, fmt.Errorf("reading passphrase file %s: passphrase is empty", path)
	}
	return p, nil
}

// decodeKey decodes base64 text in any of the four usual forms into a
// KeySize-byte key. Its errors do not contain the text.
func decodeKey(text []byte) ([]byte, error) {
	encodings := []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding,
		base64.URLEncoding, base64.RawURLEncoding,
	}
	decodedLen := -1
	for _, enc := range encodings {
		enc = enc.Strict()
		buf := make([]byte, enc.DecodedLen(len(text)))
		n, err := enc.Decode(buf, text)
		if err == nil && n == KeySize {
			return buf[:n:n], nil
		}
		clear(buf)
		if err == nil {
			decodedLen = n
		}
	}
	if decodedLen >= 0 {
		return nil, fmt.Errorf("key decodes to %d bytes, want %d", decodedLen, KeySize)
	}
	return nil, errors.New("key is not valid base64")
}

// readPrivateFile returns the content of the file at path, at most limit
// bytes, if only its owner may access it. Checking the mode of the opened
// file, not the path, leaves no window for a swap in between. Windows has no
// such mode bits, so the check is skipped there.
func readPrivateFile(path string, limit int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, &InsecureFileError{Path: path, Mode: fi.Mode().Perm()}
	}
	buf := make([]byte, limit+1)
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		clear(buf)
		return nil, err
	}
	if n > limit {
		clear(buf)
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return buf[:n:n], nil
}

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/privyhq/privy/client"
	"github.com/privyhq/privy/internal/paths"
)

var errNoToken = errors.New("no token: this command needs one")

// serverAddr is --addr, then PRIVY_ADDR, then the default socket.
func (a *app) serverAddr() string {
	if a.addr != "" {
		return a.addr
	}
	if v := os.Getenv("PRIVY_ADDR"); v != "" {
		return v
	}
	return paths.Socket()
}

// loadToken is --token-file, then PRIVY_TOKEN, then the login file. It
// returns "" without error when no token is configured anywhere.
func (a *app) loadToken() (string, error) {
	if a.tokenFile != "" {
		return readTokenFile(a.tokenFile)
	}
	if v := os.Getenv("PRIVY_TOKEN"); v != "" {
		return strings.TrimSpace(v), nil
	}
	f := paths.TokenFile()
	if f == "" {
		return "", nil
	}
	tok, err := readTokenFile(f)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	return tok, err
}

func readTokenFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("reading token file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("token file %s has mode %04o, which lets other users read it; run `chmod 600 %s`", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading token file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// writeTokenFile stores a token with mode 0600 (directory 0700).
func writeTokenFile(path, tok string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating token directory: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(tok+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing token file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing token file: %w", err)
	}
	return nil
}

// client returns a client for the server; with needToken it insists on a
// token before any request is sent.
func (a *app) client(needToken bool) (*client.Client, error) {
	tok, err := a.loadToken()
	if err != nil {
		return nil, err
	}
	if needToken && tok == "" {
		return nil, errNoToken
	}
	return client.New(a.serverAddr(), client.WithToken(tok))
}

// format is the --format flag of listings.
type format string

func (f *format) String() string { return string(*f) }
func (f *format) Type() string   { return "table|json" }
func (f *format) Set(s string) error {
	if s != "table" && s != "json" {
		return fmt.Errorf("unknown format %q: use table or json", s)
	}
	*f = format(s)
	return nil
}

func writeJSONOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

func clientWithToken(addr, tok string) (*client.Client, error) {
	return client.New(addr, client.WithToken(tok))
}

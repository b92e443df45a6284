// Package manifest reads privy.yaml, the file beside a Dockerfile that says
// where each BuildKit secret and ssh id of a build gets its value (a privy
// store path, a local file or an environment variable of the caller) and
// which profiles the built image's containers receive at run time.
//
// Load and Parse check the whole format (keys, kinds, ids, store paths,
// environment variable names, file names, modes, repository URLs) and report the first problem as an *Error
// that names file:line:col and says what to write instead. They never panic,
// whatever the input. docs/manifest.md documents the format for users, and
// docs/privy.schema.json is a JSON Schema that accepts the same manifests.
package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/privyhq/privy/internal/store"
)

// maxSize is the largest manifest, in bytes, that Load and Parse accept. A
// manifest names sources; it never holds values, so it stays small.
const maxSize = 1 << 20

// File is a parsed privy.yaml.
type File struct {
	Path  string // as given to Load or Parse
	Build Build  // the build: section
	Run   *Run   // the run: section; nil if absent or empty
}

// Build is the build: section: where `privy build` gets each secret and ssh
// id of a Dockerfile.
type Build struct {
	Secrets map[string]Source   // by BuildKit secret id
	SSH     map[string][]SSHKey // by BuildKit ssh id
}

// Source is where one build secret's value comes from: exactly one of
// Store, File, Env is set.
type Source struct {
	Store string // privy store path
	File  string // local file, made absolute against the manifest's directory
	Env   string // environment variable name
	Line  int    // where it is defined in the manifest
}

// String names the source for messages: "store app/db", "file /abs/path"
// or "env PYPI_TOKEN".
func (s Source) String() string {
	switch {
	case s.Store != "":
		return "store " + s.Store
	case s.File != "":
		return "file " + s.File
	case s.Env != "":
		return "env " + s.Env
	}
	return "no source"
}

// SSHKey is one OpenSSH private key held in privy, offered for an ssh id.
type SSHKey struct {
	Store string // privy store path of an OpenSSH private key
	Line  int    // where it is named in the manifest
}

// Error is a problem at one place of a manifest.
type Error struct {
	File      string
	Line, Col int // 1-based; 0 when not known
	Msg       string
	err       error // the underlying error, such as a *store.PathError, or nil
}

// Error returns the problem as "privy.yaml:12:5: message", leaving out the
// line or column when it is not known.
func (e *Error) Error() string {
	switch {
	case e.Line <= 0:
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	case e.Col <= 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// Unwrap returns the underlying error: a *store.PathError for a bad store
// path, the YAML parser's error for bad YAML, nil otherwise.
func (e *Error) Unwrap() error { return e.err }

// Load reads and parses the manifest at path. A missing file is an error
// wrapping fs.ErrNotExist.
func Load(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	return Parse(path, data)
}

// Parse parses data as the manifest named name. The name is used in errors
// and to resolve relative file: paths against filepath.Dir(name). An empty
// document is an empty File.
func Parse(name string, data []byte) (*File, error) {
	if len(data) > maxSize {
		return nil, &Error{File: name, Msg: fmt.Sprintf("manifest is larger than 1 MiB (%d bytes); it names where secrets come from and should hold no values, so keep it under that", maxSize)}
	}
	p := &parser{name: name, dir: filepath.Dir(name)}
	root, err := p.document(data)
	if err != nil {
		return nil, err
	}
	f := &File{Path: name}
	if root == nil || isNull(root) {
		return f, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, p.errorf(root, "want a mapping with version, build and run at the top, got %s", describe(root))
	}
	err = p.mapping(root, "at the top", func(k, v *yaml.Node) error {
		switch k.Value {
		case "version":
			return p.version(v)
		case "build":
			return p.build(v, &f.Build)
		case "run":
			var err error
			f.Run, err = p.run(v)
			return err
		}
		return p.unknownKey(k, "at the top", "version, build, run")
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

// parser holds what every message and file: path needs.
type parser struct {
	name string // the manifest's name, for errors
	dir  string // its directory, for relative file: paths
}

func (p *parser) errorf(n *yaml.Node, format string, args ...any) *Error {
	return &Error{File: p.name, Line: n.Line, Col: n.Column, Msg: fmt.Sprintf(format, args...)}
}

// document decodes the single YAML document of data and returns its root
// node, or nil when data holds no document.
func (p *parser) document(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, p.syntaxError(data, err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return nil, p.errorf(&next, "found a second YAML document; a manifest holds one, so remove the '---' and what follows or merge the two")
	} else if !errors.Is(err, io.EOF) {
		return nil, p.syntaxError(data, err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	return deref(doc.Content[0]), nil
}

// syntaxError turns an error of the YAML parser into an *Error. The line
// is that of the first prefix of the document that fails the same way:
// yaml.v3 leaves the line out of some errors (a tab in indentation, a
// control character) and, for others, gives the line before the one where
// the enclosing mapping or list starts rather than where the problem is.
func (p *parser) syntaxError(data []byte, err error) *Error {
	msg := yamlMessage(err)
	line := failingLine(data, msg)
	if strings.Contains(msg, "cannot start any token") && bytes.Contains(lineOf(data, line), []byte("\t")) {
		msg += "; indent with spaces, YAML does not allow tabs there"
	}
	return &Error{File: p.name, Line: line, Msg: "invalid YAML: " + msg, err: err}
}

// yamlMessage returns the message of a yaml.v3 error without its "yaml: "
// and "line N: " prefixes.
func yamlMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ": "); ok {
			if _, cerr := strconv.Atoi(n); cerr == nil {
				return after
			}
		}
	}
	return msg
}

// failingLine returns the smallest n such that the first n lines of data
// fail to parse with the message msg. Binary search keeps it to a few
// parses even for a large manifest.
func failingLine(data []byte, msg string) int {
	fails := func(n int) bool {
		err := decodeAll(prefix(data, n))
		return err != nil && yamlMessage(err) == msg
	}
	// The whole of data fails with msg: that is where msg came from.
	lo, hi := 1, bytes.Count(data, []byte("\n"))+1
	for lo < hi { // fails(hi) holds
		mid := lo + (hi-lo)/2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return hi
}

// decodeAll decodes every document of data and returns the first error.
func decodeAll(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// prefix returns the first n lines of data.
func prefix(data []byte, n int) []byte {
	end := 0
	for range n {
		i := bytes.IndexByte(data[end:], '\n')
		if i < 0 {
			return data
		}
		end += i + 1
	}
	return data[:end]
}

// lineOf returns line n (1-based) of data without its newline.
func lineOf(data []byte, n int) []byte {
	rest := data[len(prefix(data, n-1)):]
	if i := bytes.IndexByte(rest, '\n'); i >= 0 {
		return rest[:i]
	}
	return rest
}

// mapping calls f for each key and value of the mapping n, after checking
// that the key is a plain scalar given once. where ("in build") places the
// mapping in messages.
func (p *parser) mapping(n *yaml.Node, where string, f func(k, v *yaml.Node) error) error {
	seen := make(map[string]int) // key -> line it was first given on
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return p.errorf(k, "want a name as key %s, got %s", where, describe(k))
		}
		if k.Tag == "!!merge" {
			return p.errorf(k, "merge keys (<<) are not supported %s; write the keys out", where)
		}
		if line, dup := seen[k.Value]; dup {
			return p.errorf(k, "key %s given twice %s (first on line %d); remove one", quote(k.Value), where, line)
		}
		seen[k.Value] = k.Line
		if err := f(k, v); err != nil {
			return err
		}
	}
	return nil
}

func (p *parser) unknownKey(k *yaml.Node, where, known string) error {
	return p.errorf(k, "unknown key %s %s (known: %s)", quote(k.Value), where, known)
}

func (p *parser) version(v *yaml.Node) error {
	if v.Kind != yaml.ScalarNode || v.Tag != "!!int" {
		return p.errorf(v, "version: want the number 1, got %s; write version: 1 or leave it out", describe(v))
	}
	if n, err := strconv.ParseInt(v.Value, 0, 64); err != nil || n != 1 {
		return p.errorf(v, "unsupported version %s; this privy reads version 1, so write version: 1", quote(v.Value))
	}
	return nil
}

func (p *parser) build(v *yaml.Node, b *Build) error {
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.MappingNode {
		return p.errorf(v, "build: want a mapping with secrets and ssh, got %s", describe(v))
	}
	return p.mapping(v, "in build", func(k, v *yaml.Node) error {
		switch k.Value {
		case "secrets":
			return p.secrets(v, b)
		case "ssh":
			return p.ssh(v, b)
		}
		return p.unknownKey(k, "in build", "secrets, ssh")
	})
}

func (p *parser) secrets(v *yaml.Node, b *Build) error {
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.MappingNode {
		return p.errorf(v, "build.secrets: want a mapping from secret id to source, like npm-token: app/npm-token, got %s", describe(v))
	}
	b.Secrets = make(map[string]Source, len(v.Content)/2)
	return p.mapping(v, "in build.secrets", func(k, v *yaml.Node) error {
		if err := p.id(k, "secret"); err != nil {
			return err
		}
		src, err := p.source(k, v)
		if err != nil {
			return err
		}
		b.Secrets[k.Value] = src
		return nil
	})
}

// source reads the source of the secret with id node k: a store path, or a
// mapping with one of store, file and env.
func (p *parser) source(k, v *yaml.Node) (Source, error) {
	what := "secret " + quote(k.Value)
	src := Source{Line: k.Line}
	var err error
	switch {
	case isNull(v):
		return src, p.errorf(v, "%s has no source; write a store path, or a mapping with one of store, file, env", what)
	case v.Kind == yaml.ScalarNode:
		src.Store, err = p.storePath(v, what)
		return src, err
	case v.Kind != yaml.MappingNode:
		return src, p.errorf(v, "%s: want a store path, or a mapping with one of store, file, env, got %s", what, describe(v))
	}
	var first *yaml.Node // the key of the source given, once known
	err = p.mapping(v, "in "+what, func(k, v *yaml.Node) error {
		switch k.Value {
		case "store", "file", "env":
		default:
			return p.unknownKey(k, "in "+what, "store, file, env")
		}
		if first != nil {
			return p.errorf(k, "%s has both %s and %s; keep only one of store, file, env", what, first.Value, k.Value)
		}
		first = k
		var err error
		switch k.Value {
		case "store":
			src.Store, err = p.storePath(v, what)
		case "file":
			src.File, err = p.file(v, what)
		case "env":
			src.Env, err = p.env(v, what)
		}
		return err
	})
	if err == nil && first == nil {
		err = p.errorf(v, "%s has no source; give one of store: <path>, file: <path>, env: <NAME>", what)
	}
	return src, err
}

func (p *parser) ssh(v *yaml.Node, b *Build) error {
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.MappingNode {
		return p.errorf(v, "build.ssh: want a mapping from ssh id to key, like default: git/deploy-key, got %s", describe(v))
	}
	b.SSH = make(map[string][]SSHKey, len(v.Content)/2)
	return p.mapping(v, "in build.ssh", func(k, v *yaml.Node) error {
		if err := p.id(k, "ssh"); err != nil {
			return err
		}
		keys, err := p.sshKeys(k, v)
		if err != nil {
			return err
		}
		b.SSH[k.Value] = keys
		return nil
	})
}

// sshKeys reads the keys of the ssh id with id node k: one store path or a
// non-empty list of them.
func (p *parser) sshKeys(k, v *yaml.Node) ([]SSHKey, error) {
	what := "ssh " + quote(k.Value)
	switch {
	case isNull(v):
		return nil, p.errorf(v, "%s has no key; write the store path of an OpenSSH private key, or a list of them", what)
	case v.Kind == yaml.ScalarNode:
		path, err := p.storePath(v, what)
		return []SSHKey{{Store: path, Line: v.Line}}, err
	case v.Kind != yaml.SequenceNode:
		return nil, p.errorf(v, "%s: want a store path or a list of them, got %s", what, describe(v))
	case len(v.Content) == 0:
		return nil, p.errorf(v, "%s: empty list; name at least one store path of an OpenSSH private key", what)
	}
	keys := make([]SSHKey, 0, len(v.Content))
	for _, e := range v.Content {
		e = deref(e)
		path, err := p.storePath(e, what)
		if err != nil {
			return nil, err
		}
		keys = append(keys, SSHKey{Store: path, Line: e.Line})
	}
	return keys, nil
}

// id checks a secret or ssh id (kind): it goes into a `--secret id=…` or
// `--ssh id=…` argument, so it must be a single word without ',', '=' or '"'.
func (p *parser) id(k *yaml.Node, kind string) error {
	if k.Value == "" {
		return p.errorf(k, "empty %s id; write the id the Dockerfile uses in --mount=type=%s,id=…", kind, kind)
	}
	for _, r := range k.Value {
		switch {
		case r == ',' || r == '=' || r == '"':
			return p.errorf(k, "%s id %s contains %q, which cannot appear in an id=… argument; use letters, digits, '-', '_' and '.'", kind, quote(k.Value), r)
		case unicode.IsSpace(r) || unicode.IsControl(r):
			return p.errorf(k, "%s id %s contains whitespace or a control character (%U); use letters, digits, '-', '_' and '.'", kind, quote(k.Value), r)
		}
	}
	return nil
}

// storePath reads a privy store path for what (a secret, an ssh id, a
// profile's file).
func (p *parser) storePath(n *yaml.Node, what string) (string, error) {
	s, err := p.str(n, what, "store path")
	if err != nil {
		return "", err
	}
	if err := p.checkStorePath(n, s, what, "store path "+quote(s)); err != nil {
		return "", err
	}
	return s, nil
}

// checkStorePath checks the store path s, found at n; label names it in
// the message ("store path \"app/db\"").
func (p *parser) checkStorePath(n *yaml.Node, s, what, label string) error {
	err := store.ValidatePath(s)
	if err == nil {
		return nil
	}
	msg := err.Error()
	var pe *store.PathError
	if errors.As(err, &pe) {
		msg = fmt.Sprintf("invalid %s: %s", label, pe.Reason)
	}
	return &Error{File: p.name, Line: n.Line, Col: n.Column, Msg: what + ": " + msg, err: err}
}

// file reads a local file path and makes it absolute against the manifest's
// directory. A leading ~ is kept as it is: privy.yaml is shared, and a home
// directory differs from one user to the next.
func (p *parser) file(n *yaml.Node, what string) (string, error) {
	s, err := p.str(n, what, "file")
	switch {
	case err != nil:
		return "", err
	case s == "":
		return "", p.errorf(n, "%s: file is empty; write a path, absolute or relative to the directory of %s", what, filepath.Base(p.name))
	case strings.ContainsRune(s, 0):
		return "", p.errorf(n, "%s: file path contains a NUL character; write a path without it", what)
	}
	if !filepath.IsAbs(s) {
		s = filepath.Join(p.dir, s)
	}
	abs, err := filepath.Abs(s)
	if err != nil {
		return "", p.errorf(n, "%s: making file path %s absolute: %v", what, quote(s), err)
	}
	return abs, nil
}

// env reads the name of an environment variable: [A-Za-z_][A-Za-z0-9_]*.
func (p *parser) env(n *yaml.Node, what string) (string, error) {
	s, err := p.str(n, what, "env")
	if err != nil {
		return "", err
	}
	valid := s != "" && !('0' <= s[0] && s[0] <= '9')
	for i := 0; i < len(s) && valid; i++ {
		c := s[i]
		valid = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
	}
	if !valid {
		return "", p.errorf(n, "%s: env %s is not an environment variable name; use letters, digits and '_', not starting with a digit, like PYPI_TOKEN", what, quote(s))
	}
	return s, nil
}

// str reads a string scalar. YAML reads 2024, true or ~ as a number, a
// boolean or null; those are refused rather than turned into text, as the
// schema does.
func (p *parser) str(n *yaml.Node, what, field string) (string, error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
		return n.Value, nil
	}
	hint := ""
	switch {
	case n.Kind != yaml.ScalarNode:
	case isNull(n):
		hint = "; write a value"
	case strings.HasPrefix(n.Tag, "!!") && n.Style&yaml.TaggedStyle == 0:
		hint = "; put it in quotes" // a plain 2024 or true
	default:
		hint = "; remove the tag " + n.Tag
	}
	return "", p.errorf(n, "%s: %s: want a string, got %s%s", what, field, describe(n), hint)
}

// describe names the kind of node n for messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "nothing"
		case "!!int", "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!str":
			return "a string"
		}
		return "a value tagged " + n.Tag
	}
	return "something else"
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// deref follows a YAML alias to the node it names. yaml.v3 refuses an
// anchor that contains itself, but the loop is bounded all the same.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; i < 100 && n.Kind == yaml.AliasNode && n.Alias != nil; i++ {
		n = n.Alias
	}
	return n
}

// quote quotes s for a message, clipped so that a huge key or value cannot
// flood the terminal.
func quote(s string) string {
	const limit = 64 // bytes
	if len(s) <= limit {
		return strconv.Quote(s)
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…"
}

package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/privyhq/privy/client"
	"github.com/privyhq/privy/internal/manifest"
	"github.com/privyhq/privy/internal/store"
)

// DefaultPrivateDir is the host directory of private files: a file named
// after a secret id there is that id's value for every build on the host
// (entitlement certificates and such).
const DefaultPrivateDir = "/etc/privy/private.d"

// Private is a per-call file given with --private id=ID,src=FILE.
type Private struct {
	ID  string
	Src string
}

// ParsePrivate parses the value of a --private flag.
func ParsePrivate(s string) (Private, error) {
	var p Private
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		switch {
		case ok && k == "id":
			p.ID = v
		case ok && (k == "src" || k == "source"):
			p.Src = v
		default:
			return p, fmt.Errorf("--private %q: unknown part %q; write --private id=ID,src=FILE", s, kv)
		}
	}
	if p.ID == "" || p.Src == "" {
		return p, fmt.Errorf("--private %q: needs both id= and src=; write --private id=ID,src=FILE", s)
	}
	return p, nil
}

// Source kinds, in the order privy looks.
const (
	FromPrivate  = "--private"
	FromManifest = "privy.yaml"
	FromHost     = "host private files"
	FromStore    = "store"
	FromArgs     = "builder argument"
)

// Secret is a resolved build secret.
type Secret struct {
	ID       string
	Required bool
	From     string // one of the From constants
	Where    string // file, env var or store path, for messages
	Path     string // store path, if from the store
	Version  int    // store version, if from the store
	Value    []byte // nil for FromArgs: the caller's own --secret
}

// Name is how guard findings and messages name the secret: never its value.
func (s *Secret) Name() string {
	if s.Path != "" {
		return s.Path
	}
	return "id " + s.ID + " (" + s.Where + ")"
}

// SSH is a resolved ssh id: the store paths of its keys.
type SSH struct {
	ID       string
	Required bool
	From     string
	Keys     []SSHKey
}

// SSHKey is one key of an ssh id: its store path and public key.
type SSHKey struct {
	Path        string
	Fingerprint string
}

// Unresolved is an id privy could not resolve, with where it looked.
type Unresolved struct {
	ID       string
	Kind     string // "secret" or "ssh"
	Required bool
	Looked   []string // each place and what was there
	// configured is set when the id failed at a source configured for it
	// (--private, privy.yaml) or one that answered with an error, rather
	// than being found nowhere.
	configured bool
}

// UnresolvedError lists the ids a build cannot go on without.
type UnresolvedError struct {
	Missing []Unresolved
}

func (e *UnresolvedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d build secret id(s) could not be resolved, so the builder was not started:", len(e.Missing))
	for _, u := range e.Missing {
		fmt.Fprintf(&b, "\n  %s %q: %s", u.Kind, u.ID, strings.Join(u.Looked, "; "))
	}
	return b.String()
}

// resolver finds where each id's value comes from.
type resolver struct {
	manifest   *manifest.File // nil if there is none
	private    map[string]string
	privateDir string
	client     *client.Client // nil without a token
	getenv     func(string) string
	argSecrets map[string]bool
	argSSH     map[string]bool
}

// errSkip is a place that has nothing for the id: look at the next.
var errSkip = errors.New("nothing here")

// errNoClient is a store secret privy cannot ask for: there is no token.
var errNoClient = errors.New("no token to read it with (set PRIVY_TOKEN or run privy login)")

// errDenied is a store secret the token may not read.
var errDenied = errors.New("this token may not read it")

// secret resolves one secret mount. A place that is configured for the id
// (a --private flag, the manifest) and fails is an error, not a reason to
// look further: the user asked for that source.
func (r *resolver) secret(ctx context.Context, m Mount) (*Secret, *Unresolved) {
	u := &Unresolved{ID: m.ID, Kind: "secret", Required: m.Required}
	s := &Secret{ID: m.ID, Required: m.Required}
	if r.argSecrets[m.ID] {
		s.From, s.Where = FromArgs, "--secret"
		return s, nil
	}
	if src, ok := r.private[m.ID]; ok {
		s.From, s.Where = FromPrivate, src
		v, err := readFile(src)
		if err != nil {
			u.Looked = append(u.Looked, fmt.Sprintf("--private: %v", err))
			u.configured = true
			return nil, u
		}
		s.Value = v
		return s, nil
	}
	u.Looked = append(u.Looked, "no --private")
	if r.manifest != nil {
		if src, ok := r.manifest.Build.Secrets[m.ID]; ok {
			s.From = FromManifest
			where := fmt.Sprintf("%s:%d", r.manifest.Path, src.Line)
			switch {
			case src.Store != "":
				if err := r.fromStore(ctx, s, src.Store); err != nil {
					u.Looked = append(u.Looked, fmt.Sprintf("%s: store path %s: %v", where, src.Store, err))
					u.configured = true
					return nil, u
				}
			case src.File != "":
				s.Where = src.File
				v, err := readFile(src.File)
				if err != nil {
					u.Looked = append(u.Looked, fmt.Sprintf("%s: %v", where, err))
					u.configured = true
					return nil, u
				}
				s.Value = v
			case src.Env != "":
				s.Where = "$" + src.Env
				v := r.getenv(src.Env)
				if v == "" {
					u.Looked = append(u.Looked, fmt.Sprintf("%s: environment variable %s is not set or empty", where, src.Env))
					u.configured = true
					return nil, u
				}
				s.Value = []byte(v)
			}
			return s, nil
		}
		u.Looked = append(u.Looked, "not in "+r.manifest.Path)
	} else {
		u.Looked = append(u.Looked, "no privy.yaml beside the Dockerfile")
	}
	if r.privateDir != "" && validFileName(m.ID) {
		p := filepath.Join(r.privateDir, m.ID)
		v, err := readFile(p)
		switch {
		case err == nil:
			s.From, s.Where, s.Value = FromHost, p, v
			return s, nil
		case errors.Is(err, fs.ErrNotExist):
			u.Looked = append(u.Looked, "no "+p)
		default:
			u.Looked = append(u.Looked, err.Error())
			u.configured = true
			return nil, u
		}
	}
	if err := store.ValidatePath(m.ID); err != nil {
		u.Looked = append(u.Looked, "not a store path")
		return nil, u
	}
	s.From = FromStore
	err := r.fromStore(ctx, s, m.ID)
	switch {
	case err == nil:
		return s, nil
	case errors.Is(err, errSkip):
		u.Looked = append(u.Looked, "no store secret "+m.ID)
	default:
		u.Looked = append(u.Looked, fmt.Sprintf("store secret %s: %v", m.ID, err))
		// Only the last resort failed: a warning for an optional id.
		u.configured = !errors.Is(err, errDenied) && !errors.Is(err, errNoClient)
	}
	return nil, u
}

// fromStore reads path from the server into s.
func (r *resolver) fromStore(ctx context.Context, s *Secret, path string) error {
	s.Where, s.Path = path, path
	if r.client == nil {
		return errNoClient
	}
	sec, err := r.client.GetSecret(ctx, path, 0)
	switch {
	case errors.Is(err, client.ErrNotFound):
		if s.From == FromStore {
			return errSkip
		}
		return errors.New("no such secret")
	case errors.Is(err, client.ErrPermissionDenied):
		return errDenied
	case err != nil:
		return err
	}
	s.Value, s.Version = sec.Value, sec.Version
	return nil
}

// ssh resolves one ssh mount: only the manifest names ssh keys.
func (r *resolver) ssh(ctx context.Context, m Mount) (*SSH, *Unresolved) {
	u := &Unresolved{ID: m.ID, Kind: "ssh", Required: m.Required}
	if r.argSSH[m.ID] {
		return &SSH{ID: m.ID, Required: m.Required, From: FromArgs}, nil
	}
	if r.manifest == nil {
		u.Looked = append(u.Looked, "no privy.yaml beside the Dockerfile to name its keys (build: ssh:)")
		return nil, u
	}
	keys, ok := r.manifest.Build.SSH[m.ID]
	if !ok {
		u.Looked = append(u.Looked, fmt.Sprintf("not in the build: ssh: section of %s", r.manifest.Path))
		return nil, u
	}
	s := &SSH{ID: m.ID, Required: m.Required, From: FromManifest}
	for _, k := range keys {
		where := fmt.Sprintf("%s:%d", r.manifest.Path, k.Line)
		if r.client == nil {
			u.Looked = append(u.Looked, fmt.Sprintf("%s: key %s: no token to use it with (set PRIVY_TOKEN or run privy login)", where, k.Store))
			continue
		}
		pk, err := r.client.SSHPublicKey(ctx, k.Store)
		switch {
		case errors.Is(err, client.ErrNotFound):
			u.Looked = append(u.Looked, fmt.Sprintf("%s: key %s: no such secret", where, k.Store))
		case errors.Is(err, client.ErrPermissionDenied):
			u.Looked = append(u.Looked, fmt.Sprintf("%s: key %s: this token may not read it", where, k.Store))
		case err != nil:
			u.Looked = append(u.Looked, fmt.Sprintf("%s: key %s: %v", where, k.Store, err))
		default:
			s.Keys = append(s.Keys, SSHKey{Path: k.Store, Fingerprint: pk.Fingerprint})
		}
	}
	if len(u.Looked) > 0 {
		u.configured = true
		return nil, u
	}
	return s, nil
}

// resolveAll resolves every mount. Required ids that fail, and ids whose
// configured source fails, make an *UnresolvedError; optional ids that
// resolve nowhere are returned as warnings (BuildKit skips their mounts).
func (r *resolver) resolveAll(ctx context.Context, ms *Mounts) (secrets []*Secret, ssh []*SSH, warnings []Unresolved, err error) {
	var missing []Unresolved
	for _, m := range ms.Secrets {
		s, u := r.secret(ctx, m)
		switch {
		case u == nil:
			secrets = append(secrets, s)
		case m.Required || u.configured:
			missing = append(missing, *u)
		default:
			warnings = append(warnings, *u)
		}
	}
	for _, m := range ms.SSH {
		s, u := r.ssh(ctx, m)
		switch {
		case u == nil:
			ssh = append(ssh, s)
		case m.Required || u.configured:
			missing = append(missing, *u)
		default:
			warnings = append(warnings, *u)
		}
	}
	// --private files for ids the Dockerfile does not mount are still
	// passed (a builder may use them in ways privy cannot see).
	var extra []string
	for id := range r.private {
		if !hasID(ms.Secrets, id) {
			extra = append(extra, id)
		}
	}
	sort.Strings(extra)
	for _, id := range extra {
		s, u := r.secret(ctx, Mount{ID: id})
		if u != nil {
			missing = append(missing, *u)
			continue
		}
		secrets = append(secrets, s)
	}
	if len(missing) > 0 {
		for _, s := range secrets {
			clear(s.Value)
		}
		return nil, nil, warnings, &UnresolvedError{Missing: missing}
	}
	return secrets, ssh, warnings, nil
}

func hasID(ms []Mount, id string) bool {
	for _, m := range ms {
		if m.ID == id {
			return true
		}
	}
	return false
}

// validFileName reports whether id can name a file in the private
// directory without leaving it.
func validFileName(id string) bool {
	return id != "" && id != "." && id != ".." && !strings.ContainsAny(id, "/\x00")
}

// maxFileSize bounds a secret read from a local file.
const maxFileSize = 64 << 20

func readFile(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, unwrapPathError(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("reading %s: not a regular file", p)
	}
	if fi.Size() > maxFileSize {
		return nil, fmt.Errorf("reading %s: %d bytes is over the limit of %d", p, fi.Size(), maxFileSize)
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil && fi.Size() > 0 {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	return b, nil
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

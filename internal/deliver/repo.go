package deliver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage/memory"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	"golang.org/x/sys/unix"

	"github.com/privyhq/privy/api"
)

// Errors FetchRepo's errors wrap, for callers that turn them into hints.
var (
	ErrRepoUnreachable = errors.New("repository unreachable")
	ErrRepoAuth        = errors.New("repository authentication failed")
	ErrHostKey         = errors.New("host key verification failed")
	ErrRefNotFound     = errors.New("ref not found")
	ErrRepoFileMissing = errors.New("file missing from repository")
	ErrRepoTooLarge    = errors.New("repository too large")
)

// maxRepoSize bounds what FetchRepo holds in memory for one repository:
// the pack as it arrives, and the objects unpacked from it.
const maxRepoSize = 64 << 20

// FetchRepo clones r (a git configuration repository of a profile) into
// memory with a built-in git client — no git binary, nothing on disk — and
// returns the files to place.
//
// It fetches one commit (of r.Ref, a branch or a tag, or of the remote's
// HEAD) over ssh, https, or http to a loopback address. ssh needs the
// server's key in r.KnownHostsValue. Files ending in ".age" are decrypted
// with r.AgeIdentityValue. Errors name the repository without its password
// and never hold a credential or a file's content.
func FetchRepo(ctx context.Context, r api.RenderedRepo) ([]File, error) {
	return fetchRepo(ctx, r, maxRepoSize)
}

func fetchRepo(ctx context.Context, r api.RenderedRepo, limit int64) ([]File, error) {
	s, err := newSource(r)
	if err != nil {
		return nil, s.scrub(err)
	}
	s.limit = limit
	tree, err := s.fetch(ctx)
	if err != nil {
		return nil, s.scrub(err)
	}
	picked, err := s.pick(tree)
	if err != nil {
		return nil, s.scrub(err)
	}
	files := make([]File, 0, len(picked))
	for _, p := range picked {
		f, err := s.file(p)
		if err != nil {
			return nil, s.scrub(err)
		}
		files = append(files, f)
	}
	return files, nil
}

// source is a repository being fetched.
type source struct {
	r     api.RenderedRepo
	where string // the URL without its password, for messages
	ref   string // r.Ref or "HEAD", for messages
	auth  transport.AuthMethod
	ids   []age.Identity
	limit int64 // of the clone's size
	// credentials reports whether an http(s) server is sent any.
	credentials bool
	// secrets must not appear in an error: the URL's password and
	// r.PasswordValue, which errors of the transport may echo.
	secrets []string
}

// newSource checks r's URL and credentials before anything is dialed.
func newSource(r api.RenderedRepo) (*source, error) {
	s := &source{r: r, where: RedactURL(r.URL), ref: r.Ref}
	if s.ref == "" {
		s.ref = "HEAD"
	}
	if len(r.PasswordValue) > 0 {
		s.secrets = append(s.secrets, string(r.PasswordValue))
	}
	if u, err := url.Parse(r.URL); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			s.secrets = append(s.secrets, pw, url.QueryEscape(pw), url.PathEscape(pw))
		}
	}
	if r.URL == "" {
		return s, errors.New("repo without a url")
	}
	ep, err := transport.NewEndpoint(r.URL)
	if err != nil {
		return s, fmt.Errorf("repo %s: not a git URL", s.where)
	}
	switch ep.Protocol {
	case "ssh":
		err = s.sshAuth(ep)
	case "https":
		s.basicAuth(ep)
	case "http":
		if !isLoopback(ep.Host) {
			return s, fmt.Errorf("repo %s: http:// is unencrypted and allowed only to this machine (127.0.0.1, ::1, localhost); use https://", s.where)
		}
		s.basicAuth(ep)
	case "file":
		return s, fmt.Errorf("repo %s: a repository on a local path is refused, since a container must not read the host's files; use an ssh:// or https:// URL", s.where)
	default:
		return s, fmt.Errorf("repo %s: unsupported protocol %q; use ssh:// or https://", s.where, ep.Protocol)
	}
	if err != nil {
		return s, err
	}
	if len(r.AgeIdentityValue) > 0 {
		if s.ids, err = parseIdentities(r.AgeIdentityValue); err != nil {
			return s, fmt.Errorf("repo %s: reading the age_identity: %w", s.where, err)
		}
	}
	return s, nil
}

// sshAuth sets up public key authentication that trusts only the host keys
// r.KnownHostsValue lists.
func (s *source) sshAuth(ep *transport.Endpoint) error {
	if len(s.r.SSHKeyValue) == 0 {
		return fmt.Errorf("repo %s: an ssh URL needs a private key: set the repo's ssh_key: store path", s.where)
	}
	if len(bytes.TrimSpace(s.r.KnownHostsValue)) == 0 {
		return fmt.Errorf("repo %s: an ssh URL needs the server's host key: set the repo's known_hosts: store path to a secret holding its known_hosts lines (ssh-keyscan prints them); privy never trusts an unknown host", s.where)
	}
	user := ep.User
	if user == "" {
		user = "git"
	}
	keys, err := gitssh.NewPublicKeys(user, s.r.SSHKeyValue, "")
	if err != nil {
		return fmt.Errorf("repo %s: reading the ssh_key: %w", s.where, err)
	}
	port := ep.Port
	if port == 0 {
		port = gitssh.DefaultPort
	}
	hostPort := net.JoinHostPort(strings.Trim(ep.Host, "[]"), strconv.Itoa(port))
	keys.HostKeyCallback, keys.HostKeyAlgorithms, err = hostKeyCheck(s.r.KnownHostsValue, hostPort)
	if err != nil {
		return fmt.Errorf("repo %s: reading the known_hosts: %w", s.where, err)
	}
	if len(keys.HostKeyAlgorithms) == 0 {
		return &repoError{kind: ErrHostKey, msg: fmt.Sprintf(
			"repo %s: the known_hosts lines have no key for %s; add the server's host key line to the secret the repo's known_hosts: names", s.where, knownhosts.Normalize(hostPort))}
	}
	s.auth = keys
	return nil
}

// hostKeyCheck returns a callback that accepts only the host keys lines
// lists, and the key algorithms to ask hostPort for so that the server
// shows a key the lines can vouch for.
func hostKeyCheck(lines []byte, hostPort string) (ssh.HostKeyCallback, []string, error) {
	// The known_hosts parsers read files by name: give them one in memory.
	fd, err := unix.MemfdCreate("privy-known-hosts", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, nil, fmt.Errorf("creating an in-memory file: %w", err)
	}
	f := os.NewFile(uintptr(fd), "known_hosts")
	defer f.Close()
	if _, err := f.Write(lines); err != nil {
		return nil, nil, err
	}
	db, err := gitssh.NewKnownHostsDb("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return nil, nil, errors.New(strings.ReplaceAll(err.Error(), "/proc/self/fd/"+strconv.Itoa(fd), "known_hosts"))
	}
	return db.HostKeyCallback(), db.HostKeyAlgorithms(hostPort), nil
}

// basicAuth sends Username and PasswordValue, when given, to an http(s)
// server; either may come from the URL instead.
func (s *source) basicAuth(ep *transport.Endpoint) {
	s.credentials = s.r.Username != "" || len(s.r.PasswordValue) > 0 || ep.User != ""
	if s.r.Username == "" && len(s.r.PasswordValue) == 0 {
		return // the transport sends the URL's user and password, if any
	}
	a := &githttp.BasicAuth{Username: s.r.Username, Password: string(s.r.PasswordValue)}
	if a.Username == "" {
		a.Username = ep.User
	}
	if a.Password == "" {
		a.Password = ep.Password
	}
	s.auth = a
}

// fetch clones the commit s names and returns its tree. It returns when ctx
// is done even if the transport does not notice (an ssh handshake that
// hangs); the clone then ends in the background.
func (s *source) fetch(ctx context.Context) (*object.Tree, error) {
	type result struct {
		tree *object.Tree
		err  error
	}
	done := make(chan result, 1)
	go func() {
		tree, err := s.clone(ctx)
		done <- result{tree, err}
	}()
	select {
	case res := <-done:
		return res.tree, res.err
	case <-ctx.Done():
		return nil, fmt.Errorf("fetching repo %s: %w", s.where, context.Cause(ctx))
	}
}

// clone tries Ref as a branch, then as a tag.
func (s *source) clone(ctx context.Context) (*object.Tree, error) {
	names := []plumbing.ReferenceName{plumbing.HEAD}
	switch ref := s.r.Ref; {
	case strings.HasPrefix(ref, "refs/"):
		names = []plumbing.ReferenceName{plumbing.ReferenceName(ref)}
	case ref != "":
		names = []plumbing.ReferenceName{plumbing.NewBranchReferenceName(ref), plumbing.NewTagReferenceName(ref)}
	}
	var err error
	for _, name := range names {
		var tree *object.Tree
		tree, err = s.cloneRef(ctx, name)
		if err == nil {
			return tree, nil
		}
		if !errors.Is(err, git.NoMatchingRefSpecError{}) {
			return nil, s.describe(err)
		}
	}
	return nil, s.describe(err)
}

// cloneRef clones name, one commit deep, into memory.
func (s *source) cloneRef(ctx context.Context, name plumbing.ReferenceName) (*object.Tree, error) {
	st := &boundedStorage{Storage: memory.NewStorage(), limit: s.limit}
	repo, err := git.CloneContext(ctx, st, nil, &git.CloneOptions{
		URL:           s.r.URL,
		Auth:          s.auth,
		ReferenceName: name,
		SingleBranch:  true,
		Depth:         1,
		Tags:          git.NoTags,
	})
	if err != nil {
		return nil, err
	}
	head, err := repo.Head()
	if err != nil {
		return nil, err
	}
	h := head.Hash()
	if tag, err := repo.TagObject(h); err == nil { // an annotated tag
		h = tag.Target
	}
	commit, err := repo.CommitObject(h)
	if err != nil {
		return nil, fmt.Errorf("%s does not name a commit: %w", s.ref, err)
	}
	return commit.Tree()
}

// describe turns an error of the git client into a sentence that says
// what failed.
func (s *source) describe(err error) error {
	var keyErr *knownhosts.KeyError
	var revoked *knownhosts.RevokedError
	var netErr *net.OpError
	var dnsErr *net.DNSError
	e := &repoError{err: err}
	switch {
	case errors.Is(err, ErrRepoTooLarge):
		e.kind, e.msg = ErrRepoTooLarge, fmt.Sprintf("repo %s at %s is larger than the %s privy fetches", s.where, s.ref, size(s.limit))
	case errors.As(err, &keyErr) && len(keyErr.Want) > 0:
		e.kind, e.msg = ErrHostKey, fmt.Sprintf("repo %s: host key mismatch: the server's key is not the one known_hosts lists for it (the key changed, or someone is in the middle); refusing to connect", s.where)
	case errors.As(err, &keyErr), errors.As(err, &revoked):
		e.kind, e.msg = ErrHostKey, fmt.Sprintf("repo %s: host key verification failed: known_hosts does not vouch for the key the server showed", s.where)
	case strings.Contains(err.Error(), "no common algorithm for host key"): // x/crypto/ssh has no type for it
		e.kind, e.msg = ErrHostKey, fmt.Sprintf("repo %s: host key verification failed: the server has no key of a type the known_hosts lines list for it", s.where)
	case isSSHAuthError(err):
		e.kind, e.msg = ErrRepoAuth, fmt.Sprintf("repo %s: authentication failed: the server refused the ssh_key", s.where)
	case errors.Is(err, transport.ErrAuthenticationRequired) && s.credentials:
		e.kind, e.msg = ErrRepoAuth, fmt.Sprintf("repo %s: authentication failed: the server refused the username and password", s.where)
	case errors.Is(err, transport.ErrAuthenticationRequired):
		e.kind, e.msg = ErrRepoAuth, fmt.Sprintf("repo %s: authentication failed: the server wants credentials: set the repo's username: and password:", s.where)
	case errors.Is(err, transport.ErrAuthorizationFailed):
		e.kind, e.msg = ErrRepoAuth, fmt.Sprintf("repo %s: authentication failed: the credentials may not read it", s.where)
	case errors.Is(err, transport.ErrRepositoryNotFound):
		e.msg = fmt.Sprintf("repo %s: repository not found on the server (or the credentials may not read it)", s.where)
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		e.msg = fmt.Sprintf("repo %s: the repository is empty", s.where)
	case errors.Is(err, git.NoMatchingRefSpecError{}), errors.Is(err, plumbing.ErrReferenceNotFound):
		e.kind, e.msg = ErrRefNotFound, fmt.Sprintf("repo %s: ref %q not found (neither a branch nor a tag)", s.where, s.ref)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		e.msg = fmt.Sprintf("fetching repo %s: %v", s.where, err)
	case errors.As(err, &dnsErr), errors.As(err, &netErr):
		e.kind, e.msg = ErrRepoUnreachable, fmt.Sprintf("repo %s: repository unreachable: %v", s.where, err)
	default:
		e.msg = fmt.Sprintf("fetching repo %s at %s: %v", s.where, s.ref, err)
	}
	return e
}

// isSSHAuthError reports whether err is the ssh client's refusal by the
// server of every key offered, which x/crypto/ssh reports only as text.
func isSSHAuthError(err error) bool {
	return strings.Contains(err.Error(), "ssh: unable to authenticate")
}

// repoError is a failure to fetch a repository: a sentence of ours that
// wraps the kind (one of the Err variables) and the client's error.
type repoError struct {
	msg       string
	kind, err error
}

func (e *repoError) Error() string { return e.msg }

func (e *repoError) Unwrap() []error {
	var errs []error
	for _, err := range []error{e.kind, e.err} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// scrub removes s's secrets from err's message, keeping what it wraps.
func (s *source) scrub(err error) error {
	msg := err.Error()
	for _, secret := range s.secrets {
		if secret != "" {
			msg = strings.ReplaceAll(msg, secret, "xxxxx")
		}
	}
	if msg == err.Error() {
		return err
	}
	return &repoError{msg: msg, err: err}
}

// picked is a file of the repository to place.
type picked struct {
	src, dest string // in the repository; under r.Dir
	mode      uint32 // the RepoFile's, or 0
	file      *object.File
}

// pick lists the files r.Files selects from tree, or every file.
// Symbolic links and submodules are left out: privy follows no link.
func (s *source) pick(tree *object.Tree) ([]picked, error) {
	if len(s.r.Files) == 0 {
		return s.walk(tree, "", "", 0)
	}
	var out []picked
	for _, rf := range s.r.Files {
		src := strings.TrimSuffix(rf.Src, "/")
		if err := CheckName(src); err != nil {
			return nil, fmt.Errorf("repo %s: files: src: %w", s.where, err)
		}
		dest := strings.TrimSuffix(rf.Dest, "/")
		if dest == "" {
			dest = src
		}
		e, err := tree.FindEntry(src)
		if err != nil {
			return nil, &repoError{kind: ErrRepoFileMissing, err: err, msg: fmt.Sprintf(
				"repo %s at %s: %s not found in the repository", s.where, s.ref, rf.Src)}
		}
		dir := strings.HasSuffix(rf.Src, "/")
		switch {
		case dir && e.Mode == filemode.Dir:
			sub, err := tree.Tree(src)
			if err != nil {
				return nil, fmt.Errorf("repo %s at %s: reading directory %s: %w", s.where, s.ref, rf.Src, err)
			}
			files, err := s.walk(sub, src, dest, rf.Mode)
			if err != nil {
				return nil, err
			}
			out = append(out, files...)
		case dir:
			return nil, fmt.Errorf("repo %s at %s: %s is not a directory", s.where, s.ref, rf.Src)
		case e.Mode == filemode.Dir:
			return nil, fmt.Errorf("repo %s at %s: %s is a directory: end its src with '/' to copy it", s.where, s.ref, rf.Src)
		case !e.Mode.IsRegular():
			return nil, fmt.Errorf("repo %s at %s: %s is not a regular file (a symbolic link or a submodule), and privy follows no link", s.where, s.ref, rf.Src)
		default:
			f, err := tree.TreeEntryFile(e)
			if err != nil {
				return nil, fmt.Errorf("repo %s at %s: reading %s: %w", s.where, s.ref, rf.Src, err)
			}
			out = append(out, picked{src: src, dest: dest, mode: rf.Mode, file: f})
		}
	}
	return out, nil
}

// walk lists the regular files below tree, which is the directory src of
// the repository, to be placed under dest.
func (s *source) walk(tree *object.Tree, src, dest string, mode uint32) ([]picked, error) {
	w := object.NewTreeWalker(tree, true, nil)
	defer w.Close()
	var out []picked
	for {
		name, e, err := w.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("repo %s at %s: reading the tree: %w", s.where, s.ref, err)
		}
		if !e.Mode.IsRegular() {
			continue // a directory (walked into), a link or a submodule
		}
		f, err := tree.TreeEntryFile(&e)
		if err != nil {
			return nil, fmt.Errorf("repo %s at %s: reading %s: %w", s.where, s.ref, path.Join(src, name), err)
		}
		out = append(out, picked{src: path.Join(src, name), dest: path.Join(dest, name), mode: mode, file: f})
	}
}

// file reads p, decrypting it if its name ends in ".age".
func (s *source) file(p picked) (File, error) {
	f := File{
		Name:   path.Join(s.r.Dir, p.dest),
		Mode:   0o644, // configuration, not a secret
		Origin: fmt.Sprintf("repo %s@%s: %s", s.where, s.ref, p.src),
	}
	if s.r.UID != nil {
		f.UID = *s.r.UID
	}
	if s.r.GID != nil {
		f.GID = *s.r.GID
	}
	rd, err := p.file.Reader()
	if err == nil {
		f.Data, err = io.ReadAll(rd)
		rd.Close()
	}
	if err != nil {
		return File{}, fmt.Errorf("%s: reading: %w", f.Origin, err)
	}
	if strings.HasSuffix(p.src, ".age") {
		if len(s.ids) == 0 {
			return File{}, fmt.Errorf("%s: the file is age-encrypted: set the repo's age_identity: store path to the identity that decrypts it", f.Origin)
		}
		if f.Data, err = decrypt(f.Data, s.ids); err != nil {
			return File{}, fmt.Errorf("%s: decrypting: %w", f.Origin, err)
		}
		f.Name = strings.TrimSuffix(f.Name, ".age")
		f.Mode = 0o400 // it was a secret
	}
	switch {
	case p.mode != 0:
		f.Mode = fsMode(p.mode)
	case s.r.Mode != 0:
		f.Mode = fsMode(s.r.Mode)
	}
	if err := CheckName(f.Name); err != nil {
		return File{}, fmt.Errorf("%s: %w", f.Origin, err)
	}
	return f, nil
}

// parseIdentities reads age identities (AGE-SECRET-KEY-1…, one a line).
func parseIdentities(b []byte) ([]age.Identity, error) {
	if bytes.Contains(b, []byte("-----BEGIN")) {
		// agessh would read these, at the price of another module.
		return nil, errors.New("it holds a PEM key (an ssh key?), not age identities (AGE-SECRET-KEY-1…): make one with age-keygen")
	}
	return age.ParseIdentities(bytes.NewReader(b))
}

// decrypt decrypts an age file, armored or binary. Its plaintext is no
// larger than data.
func decrypt(data []byte, ids []age.Identity) ([]byte, error) {
	var r io.Reader = bytes.NewReader(data)
	if t := bytes.TrimLeft(data, " \t\r\n"); bytes.HasPrefix(t, []byte(armor.Header)) {
		r = armor.NewReader(bytes.NewReader(t))
	}
	dr, err := age.Decrypt(r, ids...)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(dr)
}

// isLoopback reports whether host (an endpoint's, IPv6 in brackets) is
// this machine.
func isLoopback(host string) bool {
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// RedactURL returns raw without the password its user information may
// hold, for messages.
func RedactURL(raw string) string {
	at := strings.LastIndex(raw, "@")
	if at < 0 {
		return raw
	}
	// url.Parse ends the user information at the last '@' before the
	// path, query or fragment; with an '@' after those the user may have
	// meant a password holding '/', '?' or '#'.
	if i := strings.Index(raw, ":"); i >= 0 && strings.HasPrefix(raw[i:], "://") {
		rest := raw[i+3:]
		if end := strings.IndexAny(rest, "/?#"); end < 0 || !strings.Contains(rest[end:], "@") {
			if u, err := url.Parse(raw); err == nil && u.User != nil {
				return u.Redacted()
			}
		}
	}
	// scp-like user[:password]@host:path, or something unparsable: hide
	// from the first ':' to the last '@'.
	if colon := strings.Index(raw[:at], ":"); colon >= 0 {
		return raw[:colon] + ":xxxxx" + raw[at:]
	}
	return raw
}

// boundedStorage is go-git's in-memory storage refusing more than limit
// bytes of pack or of unpacked objects.
type boundedStorage struct {
	*memory.Storage
	limit, stored int64
}

func (s *boundedStorage) SetEncodedObject(o plumbing.EncodedObject) (plumbing.Hash, error) {
	if s.stored += o.Size(); s.stored > s.limit {
		return plumbing.ZeroHash, ErrRepoTooLarge
	}
	return s.Storage.SetEncodedObject(o)
}

// PackfileWriter makes go-git hand over the pack as it arrives, so that
// its size is counted before any of it is unpacked (go-git's streaming
// parser would hold deltas without bound).
func (s *boundedStorage) PackfileWriter() (io.WriteCloser, error) {
	return &packWriter{s: s}, nil
}

// packWriter holds a pack in memory and unpacks it into its storage when
// closed.
type packWriter struct {
	s      *boundedStorage
	buf    bytes.Buffer
	failed bool
}

func (w *packWriter) Write(p []byte) (int, error) {
	if int64(w.buf.Len()+len(p)) > w.s.limit {
		w.failed = true
		return 0, ErrRepoTooLarge
	}
	return w.buf.Write(p)
}

func (w *packWriter) Close() error {
	if w.failed {
		return nil // Write's error is the one reported
	}
	p, err := packfile.NewParserWithStorage(packfile.NewScanner(bytes.NewReader(w.buf.Bytes())), w.s)
	if err == nil {
		_, err = p.Parse()
	}
	return err
}

// size formats a limit in bytes.
func size(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// fsMode converts an api mode to permission bits.
func fsMode(m uint32) os.FileMode { return os.FileMode(m).Perm() }

package testenv

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// DefaultSSHD is the OpenSSH server SSHGitServer runs; sshd re-executes
// itself for each connection, so it must be started by absolute path.
const DefaultSSHD = "/usr/sbin/sshd"

// sshdHint tells a developer how to get what SSHGitServer needs.
const sshdHint = SetupHint + " (it installs openssh-server, openssh-client and git)"

// GitServer is a real OpenSSH server on 127.0.0.1 serving one bare git
// repository to the keys it authorizes, for tests of builds that clone a
// private repository over ssh.
type GitServer struct {
	Port int
	// User is the account clients log in as: the user running the tests
	// (root on the test machines, allowed with PermitRootLogin
	// prohibit-password), since a non-root sshd can log in only its own user.
	User string
	// RepoURL is ssh://USER@127.0.0.1:PORT/abs/path/repo.git.
	RepoURL string
	// HostKey is the known_hosts line of the server's public host key for
	// [127.0.0.1]:PORT.
	HostKey string
	// KnownHosts is the path of a file holding HostKey, for ssh's
	// UserKnownHostsFile.
	KnownHosts string
	// GitRepo is the repository served (RepoDir, Content, Commit, …).
	*GitRepo

	dir, log, authorizedKeys string
	mu                       sync.Mutex // guards writes to authorizedKeys
}

// GitRepo is a bare repository on the host with a work tree that commits to
// it, for tests that fetch from a git server.
type GitRepo struct {
	// RepoDir is the bare repository on the host.
	RepoDir string
	// Content is the files committed on branch main (name -> content), so
	// that tests can check a clone. It starts with a README.md and a
	// token.txt holding a token unique to the repository; Commit updates
	// it.
	Content map[string]string

	work string // the work tree whose branch main Commit pushes to RepoDir
}

// SSHGitServer starts /usr/sbin/sshd -D -e with its own configuration on
// 127.0.0.1 and a free port, with its own host key and authorized_keys file
// (authorized are its lines; StrictModes and password logins off), serving a
// bare repository with one commit. It is stopped, by its pid, when the test
// ends. It skips (fails, in CI) the test if sshd, git or ssh are missing.
func SSHGitServer(t testing.TB, authorized ...string) *GitServer {
	t.Helper()
	sshd := DefaultSSHD
	if _, err := os.Stat(sshd); err != nil {
		Unavailable(t, sshd, sshdHint, err)
	}
	Require(t, "git", sshdHint)
	Require(t, "ssh", sshdHint)
	u, err := user.Current()
	if err != nil {
		t.Fatalf("looking up the current user: %v", err)
	}
	if os.Geteuid() == 0 {
		// The privilege separation folder a root sshd chroots into.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("creating sshd's privilege separation folder: %v", err)
		}
	}

	dir := t.TempDir()
	g := &GitServer{
		User:           u.Username,
		KnownHosts:     filepath.Join(dir, "known_hosts"),
		GitRepo:        NewGitRepo(t),
		dir:            dir,
		log:            filepath.Join(dir, "sshd.log"),
		authorizedKeys: filepath.Join(dir, "authorized_keys"),
	}
	if err := os.WriteFile(g.authorizedKeys, []byte(joinLines(authorized)), 0o600); err != nil {
		t.Fatal(err)
	}
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	pub := writeKey(t, hostKey)

	// Another process may take the free port before sshd binds it: retry.
	var startErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("finding a free port for sshd: %v", err)
		}
		if startErr = g.start(t, sshd, port, hostKey); startErr == nil {
			break
		}
	}
	if startErr != nil {
		t.Fatalf("starting sshd: %v\n%s", startErr, g.LogTail())
	}
	g.HostKey = fmt.Sprintf("[127.0.0.1]:%d %s", g.Port, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))))
	if err := os.WriteFile(g.KnownHosts, []byte(g.HostKey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g.RepoURL = fmt.Sprintf("ssh://%s@127.0.0.1:%d%s", g.User, g.Port, g.RepoDir)
	return g
}

// Authorize adds an authorized_keys line while the server runs; sshd reads
// the file at each login.
func (g *GitServer) Authorize(t testing.TB, line string) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	f, err := os.OpenFile(g.authorizedKeys, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("authorizing a key: %v", err)
	}
	_, err = f.WriteString(joinLines([]string{line}))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("authorizing a key: %v", err)
	}
}

// LogTail returns the last lines of sshd's log, for failure messages.
func (g *GitServer) LogTail() string {
	b, err := os.ReadFile(g.log)
	if err != nil {
		return fmt.Sprintf("(no sshd log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return "sshd log (" + g.log + "):\n" + strings.Join(lines, "\n")
}

// SSHKey writes a new ed25519 private key, in OpenSSH's format, to a file
// in a temporary folder and returns its path and its authorized_keys line.
func SSHKey(t testing.TB) (keyFile, authorized string) {
	t.Helper()
	keyFile = filepath.Join(t.TempDir(), "id_ed25519")
	pub := writeKey(t, keyFile)
	return keyFile, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
}

// writeKey writes a new ed25519 private key to path and returns its public
// key.
func writeKey(t testing.TB, path string) ssh.PublicKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "privy-test")
	if err != nil {
		t.Fatal(err)
	}
	// ssh and sshd refuse private keys others can read.
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sshPub
}

// gitEnv keeps the host's git configuration from changing the
// repositories tests make.
var gitEnv = []string{
	"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
	"GIT_AUTHOR_NAME=privy test", "GIT_AUTHOR_EMAIL=test@privy.invalid",
	"GIT_COMMITTER_NAME=privy test", "GIT_COMMITTER_EMAIL=test@privy.invalid",
}

// NewGitRepo makes a bare repository in a temporary folder whose branch
// main has one commit holding Content. It skips (fails, in CI) the test if
// git is missing.
func NewGitRepo(t testing.TB) *GitRepo {
	t.Helper()
	Require(t, "git", SetupHint+" (it installs git)")
	token := make([]byte, 16)
	if _, err := rand.Read(token); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := &GitRepo{
		RepoDir: filepath.Join(dir, "repo.git"),
		Content: map[string]string{},
		work:    filepath.Join(dir, "work"),
	}
	RunEnv(t, gitEnv, "git", "init", "-q", "-b", "main", r.work)
	RunEnv(t, gitEnv, "git", "init", "-q", "--bare", "-b", "main", r.RepoDir)
	r.Commit(t, map[string][]byte{
		"README.md": []byte("A repository privy's tests clone over ssh.\n"),
		"token.txt": []byte(hex.EncodeToString(token) + "\n"),
	})
	return r
}

// Commit writes files (name -> content; a name may hold '/') as regular
// files of mode 0644 and removes the files named by remove in the work
// tree, commits on branch main and pushes the commit to RepoDir.
func (r *GitRepo) Commit(t testing.TB, files map[string][]byte, remove ...string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(r.work, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
		r.Content[name] = string(content)
	}
	for _, name := range remove {
		RunEnv(t, gitEnv, "git", "-C", r.work, "rm", "-q", "-r", "--", name)
		delete(r.Content, name)
	}
	r.commit(t)
}

// Symlink commits, on branch main, a symbolic link name pointing to target
// and pushes it to RepoDir. Content does not list links.
func (r *GitRepo) Symlink(t testing.TB, name, target string) {
	t.Helper()
	p := filepath.Join(r.work, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
	r.commit(t)
}

// Branch creates branch name at main's last commit in RepoDir.
func (r *GitRepo) Branch(t testing.TB, name string) {
	t.Helper()
	RunEnv(t, gitEnv, "git", "-C", r.work, "push", "-q", r.RepoDir, "main:refs/heads/"+name)
}

// Tag creates an annotated tag name of main's last commit in RepoDir.
func (r *GitRepo) Tag(t testing.TB, name string) {
	t.Helper()
	RunEnv(t, gitEnv, "git", "-C", r.work, "tag", "-a", "-m", "privy test tag", name, "main")
	RunEnv(t, gitEnv, "git", "-C", r.work, "push", "-q", r.RepoDir, "refs/tags/"+name)
}

// commit commits everything in the work tree and pushes main to RepoDir.
func (r *GitRepo) commit(t testing.TB) {
	t.Helper()
	RunEnv(t, gitEnv, "git", "-C", r.work, "add", "-A")
	RunEnv(t, gitEnv, "git", "-C", r.work, "commit", "-q", "--allow-empty", "-m", "privy test content")
	RunEnv(t, gitEnv, "git", "-C", r.work, "push", "-q", r.RepoDir, "main")
}

// start runs sshd on port and waits until it greets a client. It returns an
// error if sshd exits or does not answer; the log says why.
func (g *GitServer) start(t testing.TB, sshd string, port int, hostKey string) error {
	t.Helper()
	config := filepath.Join(g.dir, "sshd_config")
	pidFile := filepath.Join(g.dir, "sshd.pid")
	_ = os.Remove(pidFile) // a failed attempt's
	if err := os.WriteFile(config, []byte(sshdConfig(g, port, hostKey, pidFile)), 0o644); err != nil {
		return err
	}
	logFile, err := os.OpenFile(g.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(sshd, "-D", "-e", "-f", config)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		// Only this sshd, by its pid; connections it forked end with it
		// or with their clients.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("sshd exited while starting: %v", err)
		default:
		}
		// sshd writes its pid file once it listens: a server answering
		// before that is another process on the port.
		err := errors.New("no pid file yet")
		if b, rerr := os.ReadFile(pidFile); rerr == nil && strings.TrimSpace(string(b)) == strconv.Itoa(cmd.Process.Pid) {
			err = greet(addr)
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("sshd did not answer on %s within 20s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	g.Port = port
	t.Cleanup(stop)
	return nil
}

// greet connects to addr and checks that an SSH server answers.
func greet(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	banner, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(banner, "SSH-2.0-") {
		return errors.New("not an SSH server: " + strconv.Quote(banner))
	}
	return nil
}

// sshdConfig is the whole configuration of the server: nothing comes from
// /etc/ssh.
func sshdConfig(g *GitServer, port int, hostKey, pidFile string) string {
	return fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile %s
AuthorizedKeysFile %s
AllowUsers %s
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
LogLevel VERBOSE
`, port, hostKey, pidFile, g.authorizedKeys, g.User)
}

// freePort returns a TCP port on 127.0.0.1 that nothing listened on a
// moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// joinLines ends each line with a newline.
func joinLines(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(strings.TrimRight(l, "\n"))
		b.WriteByte('\n')
	}
	return b.String()
}

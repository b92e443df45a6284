package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sshCommand is a GIT_SSH_COMMAND that uses only key and trusts only the
// host keys in knownHosts, whatever the user's ssh configuration says.
func sshCommand(key, knownHosts string) string {
	return "ssh -F /dev/null -i " + key + " -o IdentitiesOnly=yes -o BatchMode=yes" +
		" -o UserKnownHostsFile=" + knownHosts + " -o StrictHostKeyChecking=yes"
}

// cloneEnv is the environment of a git clone that ignores the host's git
// configuration.
func cloneEnv(key, knownHosts string) []string {
	return []string{
		"GIT_SSH_COMMAND=" + sshCommand(key, knownHosts),
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
	}
}

func checkClone(t *testing.T, g *GitServer, dir string) {
	t.Helper()
	for name, want := range g.Content {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("reading the clone: %v", err)
			continue
		}
		if string(got) != want {
			t.Errorf("clone's %s = %q, want %q", name, got, want)
		}
	}
}

func TestSSHGitServerClone(t *testing.T) {
	key, authorized := SSHKey(t)
	g := SSHGitServer(t, authorized)
	if want := "ssh://" + g.User + "@127.0.0.1:"; !strings.HasPrefix(g.RepoURL, want) {
		t.Errorf("RepoURL = %q, want it to start with %q", g.RepoURL, want)
	}
	if g.Content["token.txt"] == "" {
		t.Fatal("Content has no token.txt")
	}
	dir := filepath.Join(t.TempDir(), "clone")
	if _, err := output(t.Context(), CommandTimeout, cloneEnv(key, g.KnownHosts),
		"git", "clone", "-q", g.RepoURL, dir); err != nil {
		t.Fatalf("%v\n%s", err, g.LogTail())
	}
	checkClone(t, g, dir)
}

func TestSSHGitServerRefusesUnauthorizedKey(t *testing.T) {
	_, authorized := SSHKey(t)
	other, otherAuthorized := SSHKey(t)
	g := SSHGitServer(t, authorized)
	env := cloneEnv(other, g.KnownHosts)

	dir := filepath.Join(t.TempDir(), "clone")
	_, err := output(t.Context(), CommandTimeout, env, "git", "clone", "-q", g.RepoURL, dir)
	if err == nil {
		t.Fatal("clone with an unauthorized key succeeded")
	}
	if !strings.Contains(err.Error(), "Permission denied (publickey)") {
		t.Errorf("clone with an unauthorized key: %v; want Permission denied (publickey)", err)
	}

	// Authorize takes effect without a restart.
	g.Authorize(t, otherAuthorized)
	if _, err := output(t.Context(), CommandTimeout, env, "git", "clone", "-q", g.RepoURL, dir); err != nil {
		t.Fatalf("clone after Authorize: %v\n%s", err, g.LogTail())
	}
	checkClone(t, g, dir)
}

func TestSSHGitServerChecksHostKey(t *testing.T) {
	key, authorized := SSHKey(t)
	g := SSHGitServer(t, authorized)
	wrong := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(wrong, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "clone")
	_, err := output(t.Context(), CommandTimeout, cloneEnv(key, wrong), "git", "clone", "-q", g.RepoURL, dir)
	if err == nil || !strings.Contains(err.Error(), "Host key verification failed") {
		t.Errorf("clone without the host key in known_hosts: %v; want Host key verification failed", err)
	}
}

// TestGitImageClones proves the git image serves build tests: a container
// on the host's network clones the repository with a bind-mounted key.
func TestGitImageClones(t *testing.T) {
	docker := Docker(t)
	image := GitImage(t)
	key, authorized := SSHKey(t)
	g := SSHGitServer(t, authorized)

	keys := filepath.Dir(key)
	if err := os.WriteFile(filepath.Join(keys, "known_hosts"), []byte(g.HostKey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `git clone -q "$1" /tmp/clone && cd /tmp/clone && for f in *; do printf '%s=' "$f"; cat "$f"; done`
	out, err := output(t.Context(), CommandTimeout, nil, docker, "run", "--rm", "--network", "host",
		"-v", keys+":/keys:ro",
		"-e", "GIT_SSH_COMMAND="+sshCommand("/keys/"+filepath.Base(key), "/keys/known_hosts"),
		image, "sh", "-c", script, "sh", g.RepoURL)
	if err != nil {
		t.Fatalf("%v\n%s", err, g.LogTail())
	}
	for name, content := range g.Content {
		if want := name + "=" + content; !strings.Contains(out, want) {
			t.Errorf("container's clone printed %q, want it to contain %q", out, want)
		}
	}
}

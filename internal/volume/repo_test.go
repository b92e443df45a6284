package volume

import (
	"os"
	"strings"
	"testing"

	plugin "github.com/docker/go-plugins-helpers/volume"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/testenv"
)

// TestMountClonesRepo: a profile's git repository is cloned at mount time
// (over a real sshd on 127.0.0.1) and its files placed beside the
// profile's own, which override them.
func TestMountClonesRepo(t *testing.T) {
	keyFile, authorized := testenv.SSHKey(t)
	g := testenv.SSHGitServer(t, authorized)
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	g.Commit(t, map[string][]byte{"dnsmasq.conf": []byte("port=5353\n"), "db": []byte("from the repo\n")})
	e := newEnv(t)
	e.src.put("ops/key", string(key))
	e.src.put("ops/known", g.HostKey+"\n")
	e.src.put("app/db", "db-from-privy")
	e.src.setProfile(api.Profile{Name: "dns",
		Files: []api.ProfileFile{{Name: "etc/db", Secret: "app/db"}},
		Repos: []api.ProfileRepo{{URL: g.RepoURL, Dir: "etc", SSHKey: "ops/key", KnownHosts: "ops/known"}},
	})
	e.create("dns", map[string]string{})
	dir := e.mount("dns", "c1")
	got, err := os.ReadFile(dir + "/etc/dnsmasq.conf")
	if err != nil || string(got) != "port=5353\n" {
		t.Errorf("etc/dnsmasq.conf holds %q (%v); want the repository's file", got, err)
	}
	if got, _ := os.ReadFile(dir + "/etc/db"); string(got) != "db-from-privy" {
		t.Errorf("etc/db holds %q; want the profile's file, which overrides the repository's", got)
	}

	// An unreachable repository fails the mount, naming it, and leaves
	// nothing mounted.
	e.src.setProfile(api.Profile{Name: "gone",
		Repos: []api.ProfileRepo{{URL: "ssh://git@127.0.0.1:1/x.git", SSHKey: "ops/key", KnownHosts: "ops/known"}},
	})
	e.create("gone", map[string]string{})
	_, err = e.d.Mount(&plugin.MountRequest{Name: "gone", ID: "c2"})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || !strings.Contains(err.Error(), `profile "gone"`) {
		t.Fatalf("mounting a profile whose repository is unreachable: %v; want an error naming the profile and the repository", err)
	}
	if ms := mountsUnder(t, e.root); len(ms) != 1 {
		t.Errorf("mounts under the root after a failed mount: %v; want only the first", ms)
	}
}

package pexec

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/deliver"
	"github.com/privyhq/privy/internal/servertest"
)

// shmDir returns a fresh directory on /dev/shm (a tmpfs), removed at the end.
func shmDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("/dev/shm", "privy-pexec-test-")
	if err != nil {
		t.Fatalf("a tmpfs directory for the test: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func setup(t *testing.T, p api.Profile, secrets map[string]string) (*servertest.Server, string) {
	t.Helper()
	srv := servertest.Start(t)
	for path, v := range secrets {
		srv.Put(t, path, []byte(v))
	}
	c := srv.Client(t, srv.Root)
	if _, err := c.PutProfile(context.Background(), p); err != nil {
		t.Fatalf("storing profile: %v", err)
	}
	return srv, srv.Token(t, "read:app/**")
}

func TestPrepareWritesProfileAndRunsPost(t *testing.T) {
	uid := os.Getuid()
	srv, tok := setup(t, api.Profile{
		Name: "web",
		Files: []api.ProfileFile{
			{Name: "db", Secret: "app/db"},
			{Name: "tls/key.pem", Secret: "app/key", Owner: api.Owner{Mode: 0o440, UID: &uid}},
		},
		Post: []string{"/bin/sh", "-c", "cat db > ../post-saw"},
	}, map[string]string{"app/db": "db-value-123456", "app/key": "key-value-123456"})
	parent := shmDir(t)
	dir := filepath.Join(parent, "secrets")
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "stale"), []byte("old"), 0o600)
	o := &Options{Profile: "web", Dir: dir, Command: []string{"true"}, Env: []string{"PATH=/usr/bin:/bin"}}
	if _, err := Prepare(context.Background(), srv.Client(t, tok), o); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	for name, want := range map[string]string{"db": "db-value-123456", "tls/key.pem": "key-value-123456"} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != want {
			t.Errorf("%s holds %q (%v); want the secret's value", name, got, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "tls/key.pem")); err != nil || fi.Mode().Perm() != 0o440 {
		t.Errorf("tls/key.pem: mode %v (%v); want 0440", fi.Mode(), err)
	}
	if _, err := os.Stat(filepath.Join(dir, "stale")); !os.IsNotExist(err) {
		t.Errorf("a file left by an earlier run is still there (%v)", err)
	}
	if got, _ := os.ReadFile(filepath.Join(parent, "post-saw")); string(got) != "db-value-123456" {
		t.Errorf("the post hook saw %q; want the placed file", got)
	}
}

func TestPrepareFailureLeavesDirEmpty(t *testing.T) {
	srv, tok := setup(t, api.Profile{
		Name:  "web",
		Files: []api.ProfileFile{{Name: "db", Secret: "app/db"}, {Name: "gone", Secret: "app/missing"}},
	}, map[string]string{"app/db": "db-value-123456"})
	dir := shmDir(t)
	os.WriteFile(filepath.Join(dir, "stale"), []byte("old"), 0o600)
	o := &Options{Profile: "web", Dir: dir, Command: []string{"true"}}
	_, err := Prepare(context.Background(), srv.Client(t, tok), o)
	if err == nil || !strings.Contains(err.Error(), "app/missing") || !strings.Contains(err.Error(), `profile "web"`) {
		t.Fatalf("Prepare with a missing secret: %v; want an error naming the profile and the secret", err)
	}
	if strings.Contains(err.Error(), "db-value-123456") {
		t.Errorf("the error holds a secret value: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("the directory holds %d entries after a failed Prepare; want none", len(ents))
	}
}

func TestPrepareRefusesDisk(t *testing.T) {
	srv, tok := setup(t, api.Profile{Name: "web", Files: []api.ProfileFile{{Name: "db", Secret: "app/db"}}},
		map[string]string{"app/db": "db-value-123456"})
	dir := t.TempDir()
	if ok, _ := onTmpfs(dir); ok {
		dir = "/var/tmp"
	}
	o := &Options{Profile: "web", Dir: dir, Command: []string{"true"}}
	_, err := Prepare(context.Background(), srv.Client(t, tok), o)
	if err == nil || !strings.Contains(err.Error(), "not on a tmpfs") || !strings.Contains(err.Error(), "--allow-disk") {
		t.Fatalf("Prepare on a disk directory: %v; want a refusal naming --allow-disk", err)
	}
}

// TestSuperviseAppliesRotation: with --supervise, a new version of a
// secret is placed while the command runs, and the command gets the
// profile's on_rotate signal.
func TestSuperviseAppliesRotation(t *testing.T) {
	srv, tok := setup(t, api.Profile{
		Name: "web", OnRotate: "SIGHUP",
		Files: []api.ProfileFile{{Name: "db", Secret: "app/db"}},
	}, map[string]string{"app/db": "first-value-123456"})
	dir := shmDir(t)
	work := t.TempDir()
	want := filepath.Join(work, "want")
	os.WriteFile(want, []byte("second-value-123456"), 0o600)
	// The command exits 7 once it has had SIGHUP and the file holds the new
	// value, 3 if that never happens.
	script := `trap 'touch "$W/hup"' HUP
i=0
while [ $i -lt 400 ]; do
	if [ -f "$W/hup" ] && cmp -s "$D/db" "$W/want"; then exit 7; fi
	sleep 0.05; i=$((i+1))
done
exit 3`
	c := srv.Client(t, tok)
	o := &Options{Profile: "web", Dir: dir, Supervise: true,
		Command: []string{"/bin/sh", "-c", script},
		Env:     []string{"PATH=/usr/bin:/bin", "W=" + work, "D=" + dir}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := Prepare(ctx, c, o)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	defer func() { close(done); <-stopped }()
	go func() {
		defer close(stopped)
		// Rotate once the watch is likely connected, and again in case the
		// first change came before it.
		for i := 0; i < 10; i++ {
			select {
			case <-done:
				return
			case <-time.After(200 * time.Millisecond):
			}
			srv.Put(t, "app/db", []byte("second-value-123456"))
			if b, _ := os.ReadFile(filepath.Join(work, "hup")); b != nil {
				return
			}
		}
	}()
	code, err := Supervise(ctx, c, o, r)
	if err != nil {
		t.Fatalf("Supervise: %v", err)
	}
	if code != 7 {
		got, _ := os.ReadFile(filepath.Join(dir, "db"))
		t.Fatalf("the command exited %d; want 7 (file holds the new value: %v)", code, bytes.Equal(got, []byte("second-value-123456")))
	}
}

func onTmpfs(dir string) (bool, error) { return deliver.OnTmpfs(dir) }

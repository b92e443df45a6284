package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/privyhq/privy/internal/testenv"
)

// composeHint says how to get docker-compose.
const composeHint = testenv.SetupHint + " (it installs Debian's docker-compose)"

// TestComposeVolume brings up a Compose service whose secrets come from a
// `driver: privy` volume (issue test 6) and takes it down again.
func TestComposeVolume(t *testing.T) {
	v := newVolEnv(t)
	testenv.Require(t, "docker-compose", composeHint)
	value := newValue("compose")
	forms := leakForms([]byte(value))
	v.put("app/compose/db", value)
	v.applyProfiles(`version: 1
run:
  profiles:
    svc:
      files:
        db_password: {secret: app/compose/db, mode: "0440"}
`)
	// The volume is made first, with the driver named, and Compose finds
	// it: a lookup of a volume name the engine does not know asks every
	// volume plugin it has ever seen, and the plugins of earlier tests'
	// servers, gone, each cost it seconds of retries (docs/run.md).
	vol := v.volume("profile=svc")
	dir := tempDir(t)
	project := "pe2e" + randHex(6)
	// network_mode none: Compose then creates no network (the engine here
	// runs with bridge networking off, and tests never add one).
	compose := `version: "2.4"
services:
  app:
    image: ` + v.image + `
    network_mode: none
    command: ["sh", "-c", "grep ' /run/secrets ' /proc/mounts | cut -d' ' -f3; stat -c %a /run/secrets/db_password; sha256sum /run/secrets/db_password | cut -d' ' -f1"]
    volumes:
      - secrets:/run/secrets:ro
volumes:
  secrets:
    external: true
    name: ` + vol + `
`
	file := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(file, []byte(compose), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		cmd := exec.Command("docker-compose", append([]string{"-f", file, "-p", project, "--ansi", "never"}, args...)...)
		cmd.Env = append(os.Environ(), "DOCKER_HOST=unix:///var/run/docker.sock")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() { run("down", "--remove-orphans") })
	out, err := run("run", "--rm", "--no-deps", "app")
	if err != nil {
		t.Fatalf("docker-compose run failed: %v\n%s", err, redact(out))
	}
	assertAbsent(t, "docker-compose output", []byte(out), forms)
	lines := strings.Fields(out)
	if len(lines) < 3 {
		t.Fatalf("docker-compose run printed %q; want the filesystem, mode and sum of the secret", redact(out))
	}
	got := lines[len(lines)-3:]
	if got[0] != "tmpfs" || got[1] != "440" || got[2] != sum(value) {
		t.Errorf("the service saw %q; want [tmpfs 440 <sum of the value>]", got)
	}
	if out, err := run("down"); err != nil {
		t.Fatalf("docker-compose down failed: %v\n%s", err, redact(out))
	}
	v.assertNothingLeft()
	v.sweep(forms)
}

package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/privyhq/privy/internal/testenv"
)

// TestEtcdTwoServers: `privy init --store etcd://…` and two `privy server`s
// on one etcd share one state: a secret written through one is read
// through the other, a token revoked on one is refused by the other within
// a second, and a client given both addresses keeps working when the
// first server stops.
func TestEtcdTwoServers(t *testing.T) {
	cluster := testenv.Etcd(t, 1)
	spec := "etcd://" + strings.Join(trimScheme(cluster.Endpoints()), ",")
	dir := tempDir(t)
	keyFile := filepath.Join(dir, "master.key")
	res := runCLI(t, nil, nil, "init", "--data-dir", filepath.Join(dir, "init"), "--store", spec, "--key-file", keyFile)
	if res.code != 0 {
		t.Fatalf("privy init --store %s failed:\n%s", spec, res)
	}
	root := strings.TrimSpace(res.stdout)
	if !strings.Contains(res.stderr, "initialised store etcd:") {
		t.Errorf("privy init did not say it initialised the etcd store:\n%s", res)
	}
	a := startServer(t, "--store", spec, "--key-file", keyFile, "--docker", "none")
	b := startServer(t, "--store", spec, "--key-file", keyFile, "--docker", "none")

	value := newValue("etcd")
	forms := leakForms([]byte(value))
	if res := runCLI(t, a.env(root), []byte(value), "secret", "put", "app/shared"); res.code != 0 {
		t.Fatalf("secret put through server A failed:\n%s", res)
	}
	res = runCLI(t, b.env(root), nil, "secret", "get", "app/shared")
	if res.code != 0 || res.stdout != value {
		t.Fatalf("secret get through server B: exit %d; want the value written through A", res.code)
	}

	// A token revoked on A is refused by B within a second.
	res = runCLI(t, a.env(root), nil, "token", "create", "--allow", "read:app/**", "--format", "json")
	if res.code != 0 {
		t.Fatalf("token create failed:\n%s", res)
	}
	tok, accessor := jsonField(t, res.stdout, "token"), jsonField(t, res.stdout, "accessor")
	if res := runCLI(t, b.env(tok), nil, "secret", "get", "app/shared"); res.code != 0 {
		t.Fatalf("the new token does not work on server B:\n%s", redact(res.String()))
	}
	if res := runCLI(t, a.env(root), nil, "token", "revoke", accessor); res.code != 0 {
		t.Fatalf("token revoke on A failed:\n%s", res)
	}
	revoked := time.Now()
	for {
		res := runCLI(t, b.env(tok), nil, "secret", "get", "app/shared")
		if res.code == 4 {
			break
		}
		if time.Since(revoked) > time.Second {
			t.Fatalf("server B still accepts a token revoked on A after %v (exit %d)", time.Since(revoked), res.code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("server B refused the revoked token %v after the revocation on A", time.Since(revoked).Round(time.Millisecond))

	// Failover: with both addresses, the CLI keeps working when A stops.
	both := []string{"PRIVY_ADDR=" + a.socket + "," + b.socket, "PRIVY_TOKEN=" + root}
	a.stop(10 * time.Second)
	res = runCLI(t, both, nil, "secret", "get", "app/shared")
	if res.code != 0 || res.stdout != value {
		t.Fatalf("secret get with A stopped and B listed second: exit %d\n%s", res.code, redact(res.stderr))
	}
	res = runCLI(t, both, []byte(value+"-2"), "secret", "put", "app/shared")
	if res.code != 0 || !strings.Contains(res.stdout, "version 2") {
		t.Fatalf("secret put with A stopped: %s", redact(res.String()))
	}
	assertAbsent(t, "server A's log", []byte(a.log()), forms)
	assertAbsent(t, "server B's log", []byte(b.log()), forms)
}

func trimScheme(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
	}
	return out
}

// jsonField returns the string field name of the JSON object s.
func jsonField(t *testing.T, s, name string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not a JSON object: %v", err)
	}
	v, _ := m[name].(string)
	if v == "" {
		t.Fatalf("JSON has no string field %q", name)
	}
	return v
}

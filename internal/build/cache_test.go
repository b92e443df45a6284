package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBustCache(t *testing.T) {
	df := "FROM a AS one\nRUN true\nRUN --mount=type=secret,id=x \\\n    --mount=type=secret,id=y true\nRUN --mount=type=secret,id=x true\nFROM b\nRUN --mount=type=secret,id=x true\nRUN --mount=type=secret,id=skip true\n"
	ms, err := parseDockerfile("Dockerfile", []byte(df))
	if err != nil {
		t.Fatal(err)
	}
	got := string(bustCache([]byte(df), ms.Runs, map[string]int{"x": 0, "y": 3}))
	want := "FROM a AS one\nRUN true\nARG PRIVY_SECRET_REV_0\nARG PRIVY_SECRET_REV_3\nRUN --mount=type=secret,id=x \\\n    --mount=type=secret,id=y true\nRUN --mount=type=secret,id=x true\nFROM b\nARG PRIVY_SECRET_REV_0\nRUN --mount=type=secret,id=x true\nRUN --mount=type=secret,id=skip true\n"
	if got != want {
		t.Errorf("bustCache:\ngot\n%s\nwant\n%s", got, want)
	}
	// The result is still a Dockerfile with the same mounts.
	again, err := parseDockerfile("Dockerfile", []byte(got))
	if err != nil {
		t.Fatalf("the rewritten Dockerfile does not parse: %v", err)
	}
	if len(again.Secrets) != len(ms.Secrets) {
		t.Errorf("rewritten Dockerfile mounts %d secrets, want %d", len(again.Secrets), len(ms.Secrets))
	}
}

func TestFingerprint(t *testing.T) {
	k1, k2 := []byte(strings.Repeat("a", 32)), []byte(strings.Repeat("b", 32))
	v := []byte("s3cret-value")
	if fingerprint(k1, v) != fingerprint(k1, v) {
		t.Error("fingerprint is not deterministic")
	}
	if fingerprint(k1, v) == fingerprint(k2, v) || fingerprint(k1, v) == fingerprint(k1, []byte("s3cret-valuf")) {
		t.Error("fingerprint does not depend on both key and value")
	}
	if f := fingerprint(k1, v); len(f) != 32 || strings.Contains(f, string(v)) {
		t.Errorf("fingerprint %q: want 32 hex digits without the value", f)
	}
}

func TestCacheKey(t *testing.T) {
	file := filepath.Join(t.TempDir(), "privy", "build-cache.key")
	k, err := cacheKey(file)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	k2, err := cacheKey(file)
	if err != nil || string(k) != string(k2) {
		t.Errorf("second call: %v, same key %v; want the stored key", err, string(k) == string(k2))
	}
	os.WriteFile(file, []byte("not hex\n"), 0o600)
	if _, err := cacheKey(file); err == nil || !strings.Contains(err.Error(), "remove it to make a new one") {
		t.Errorf("corrupt key file: got %v, want an error saying what to do", err)
	}
	if _, err := cacheKey(""); err == nil {
		t.Error("no config directory: want an error")
	}
}

package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/privyhq/privy/client"
	"github.com/privyhq/privy/internal/manifest"
	"github.com/privyhq/privy/internal/servertest"
)

// checkNoValues fails the test if any of strs holds any of values.
func checkNoValues(t *testing.T, values [][]byte, strs ...string) {
	t.Helper()
	for _, s := range strs {
		for _, v := range values {
			if len(v) > 0 && strings.Contains(s, string(v)) {
				t.Errorf("a secret value (%d bytes) appears in %q", len(v), s)
			}
		}
	}
}

// resolutionStrings returns every string of a resolution that a user may
// see: error, warnings, and where each secret came from.
func resolutionStrings(secrets []*Secret, ssh []*SSH, warnings []Unresolved, err error) []string {
	var out []string
	if err != nil {
		out = append(out, err.Error())
		var ue *UnresolvedError
		if errors.As(err, &ue) {
			for _, u := range ue.Missing {
				out = append(out, u.ID)
				out = append(out, u.Looked...)
			}
		}
	}
	for _, u := range warnings {
		out = append(out, u.ID)
		out = append(out, u.Looked...)
	}
	for _, s := range secrets {
		out = append(out, s.ID, s.Where, s.Path, s.Name(), s.From)
	}
	for _, s := range ssh {
		out = append(out, s.ID, s.From)
		for _, k := range s.Keys {
			out = append(out, k.Path, k.Fingerprint)
		}
	}
	return out
}

// writeTestFile writes b at p, making its directory.
func writeTestFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// testManifest writes privy.yaml with lines into dir and loads it.
func testManifest(t *testing.T, dir string, lines ...string) *manifest.File {
	t.Helper()
	p := filepath.Join(dir, "privy.yaml")
	writeTestFile(t, p, []byte(strings.Join(lines, "\n")+"\n"))
	mf, err := manifest.Load(p)
	if err != nil {
		t.Fatalf("manifest.Load: %v", err)
	}
	return mf
}

func newTestResolver(mf *manifest.File, c *client.Client, privateDir string) *resolver {
	return &resolver{
		manifest:   mf,
		private:    map[string]string{},
		privateDir: privateDir,
		client:     c,
		getenv:     func(string) string { return "" },
		argSecrets: map[string]bool{},
		argSSH:     map[string]bool{},
	}
}

// unresolvedOf returns the ids privy could not resolve, from err.
func unresolvedOf(t *testing.T, err error) []Unresolved {
	t.Helper()
	if err == nil {
		return nil
	}
	var ue *UnresolvedError
	if !errors.As(err, &ue) {
		t.Fatalf("got error %v (%T), want an *UnresolvedError", err, err)
	}
	return ue.Missing
}

func TestResolveOrder(t *testing.T) {
	ctx := context.Background()
	srv := servertest.Start(t)
	srv.Put(t, "npmrc", []byte("VALUE-store-old"))
	srv.Put(t, "npmrc", []byte("VALUE-store"))
	srv.Put(t, "app/npmrc", []byte("VALUE-manifest-store"))
	c := srv.Client(t, srv.Token(t, "read:**"))

	dir := t.TempDir()
	hostDir := filepath.Join(dir, "private.d")
	writeTestFile(t, filepath.Join(hostDir, "npmrc"), []byte("VALUE-host"))
	emptyHostDir := filepath.Join(dir, "empty.d")
	if err := os.Mkdir(emptyHostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	privateFile := filepath.Join(dir, "private-npmrc")
	writeTestFile(t, privateFile, []byte("VALUE-private"))
	writeTestFile(t, filepath.Join(dir, "mfile", "certs", "npmrc.txt"), []byte("VALUE-manifest-file"))
	manifests := map[string]*manifest.File{
		"file":  testManifest(t, filepath.Join(dir, "mfile"), "build:", "  secrets:", "    npmrc: {file: certs/npmrc.txt}"),
		"store": testManifest(t, filepath.Join(dir, "mstore"), "build:", "  secrets:", "    npmrc: app/npmrc"),
		"env":   testManifest(t, filepath.Join(dir, "menv"), "build:", "  secrets:", "    npmrc:", "      env: PRIVY_TEST_NPMRC"),
		"other": testManifest(t, filepath.Join(dir, "mother"), "build:", "  secrets:", "    other: app/other"),
		"empty": testManifest(t, filepath.Join(dir, "mempty"), "# nothing"),
	}
	values := [][]byte{[]byte("VALUE-store-old"), []byte("VALUE-store"), []byte("VALUE-manifest-store"), []byte("VALUE-host"),
		[]byte("VALUE-private"), []byte("VALUE-manifest-file"), []byte("VALUE-env")}

	tests := []struct {
		name       string
		private    bool
		manifest   string // key of manifests, "" for none
		privateDir string
		want       Secret
	}{
		{
			name: "--private beats everything", private: true, manifest: "file", privateDir: hostDir,
			want: Secret{From: FromPrivate, Where: privateFile, Value: []byte("VALUE-private")},
		},
		{
			name: "privy.yaml file beats the host dir", manifest: "file", privateDir: hostDir,
			want: Secret{From: FromManifest, Where: filepath.Join(dir, "mfile", "certs", "npmrc.txt"), Value: []byte("VALUE-manifest-file")},
		},
		{
			name: "privy.yaml store beats the host dir", manifest: "store", privateDir: hostDir,
			want: Secret{From: FromManifest, Where: "app/npmrc", Path: "app/npmrc", Version: 1, Value: []byte("VALUE-manifest-store")},
		},
		{
			name: "privy.yaml env beats the host dir", manifest: "env", privateDir: hostDir,
			want: Secret{From: FromManifest, Where: "$PRIVY_TEST_NPMRC", Value: []byte("VALUE-env")},
		},
		{
			name: "host dir beats the store", manifest: "other", privateDir: hostDir,
			want: Secret{From: FromHost, Where: filepath.Join(hostDir, "npmrc"), Value: []byte("VALUE-host")},
		},
		{
			name: "host dir without a manifest", privateDir: hostDir,
			want: Secret{From: FromHost, Where: filepath.Join(hostDir, "npmrc"), Value: []byte("VALUE-host")},
		},
		{
			name: "store, latest version", manifest: "empty", privateDir: emptyHostDir,
			want: Secret{From: FromStore, Where: "npmrc", Path: "npmrc", Version: 2, Value: []byte("VALUE-store")},
		},
		{
			name: "store without a host dir",
			want: Secret{From: FromStore, Where: "npmrc", Path: "npmrc", Version: 2, Value: []byte("VALUE-store")},
		},
		{
			name: "store with a host dir that does not exist", privateDir: filepath.Join(dir, "nope.d"),
			want: Secret{From: FromStore, Where: "npmrc", Path: "npmrc", Version: 2, Value: []byte("VALUE-store")},
		},
	}
	for _, tt := range tests {
		for _, required := range []bool{false, true} {
			name := tt.name
			if required {
				name += ", required"
			}
			t.Run(name, func(t *testing.T) {
				r := newTestResolver(manifests[tt.manifest], c, tt.privateDir)
				r.getenv = func(k string) string {
					if k == "PRIVY_TEST_NPMRC" {
						return "VALUE-env"
					}
					return ""
				}
				if tt.private {
					r.private["npmrc"] = privateFile
				}
				secrets, sshIDs, warnings, err := r.resolveAll(ctx, &Mounts{Secrets: []Mount{{ID: "npmrc", Required: required}}})
				checkNoValues(t, values, resolutionStrings(secrets, sshIDs, warnings, err)...)
				if err != nil {
					t.Fatalf("resolveAll: got error %v", err)
				}
				if len(warnings) != 0 || len(sshIDs) != 0 {
					t.Errorf("resolveAll: got warnings %+v and ssh %+v, want none", warnings, sshIDs)
				}
				if len(secrets) != 1 {
					t.Fatalf("resolveAll: got %d secrets, want 1", len(secrets))
				}
				want := tt.want
				want.ID, want.Required = "npmrc", required
				if got := secrets[0]; !reflect.DeepEqual(*got, want) {
					t.Errorf("resolveAll:\ngot  %+v\nwant %+v", secretNoValue(got), secretNoValue(&want))
					if !bytes.Equal(got.Value, want.Value) {
						t.Errorf("got the value of another source")
					}
				}
			})
		}
	}
}

// secretNoValue is s without its value, for messages.
func secretNoValue(s *Secret) Secret {
	c := *s
	c.Value = nil
	return c
}

func TestResolveConfiguredSourceFails(t *testing.T) {
	ctx := context.Background()
	srv := servertest.Start(t)
	// The id resolves from the host dir and the store too: a configured
	// source that fails must not fall back to them.
	srv.Put(t, "npmrc", []byte("VALUE-store"))
	srv.Put(t, "app/secret", []byte("VALUE-app-secret"))
	c := srv.Client(t, srv.Token(t, "read:npmrc", "read:app/missing"))
	dir := t.TempDir()
	hostDir := filepath.Join(dir, "private.d")
	writeTestFile(t, filepath.Join(hostDir, "npmrc"), []byte("VALUE-host"))
	privDir := filepath.Join(dir, "a-directory")
	if err := os.Mkdir(privDir, 0o755); err != nil {
		t.Fatal(err)
	}
	values := [][]byte{[]byte("VALUE-store"), []byte("VALUE-app-secret"), []byte("VALUE-host")}

	mf := func(name string, lines ...string) *manifest.File {
		return testManifest(t, filepath.Join(dir, name), append([]string{"build:", "  secrets:"}, lines...)...)
	}
	tests := []struct {
		name    string
		private string // --private src for npmrc
		mf      *manifest.File
		env     string // value of $NPMRC
		want    string // in Looked
	}{
		{name: "--private file missing", private: filepath.Join(dir, "missing"), want: "--private: reading " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{name: "--private is a directory", private: privDir, want: "--private: reading " + privDir + ": not a regular file"},
		{name: "privy.yaml store path missing", mf: mf("m1", "    npmrc: app/missing"), want: filepath.Join(dir, "m1", "privy.yaml") + ":3: store path app/missing: no such secret"},
		{name: "privy.yaml store path denied", mf: mf("m2", "    npmrc:", "      store: app/secret"), want: filepath.Join(dir, "m2", "privy.yaml") + ":3: store path app/secret: this token may not read it"},
		{name: "privy.yaml file missing", mf: mf("m3", "    npmrc: {file: nope.txt}"), want: filepath.Join(dir, "m3", "privy.yaml") + ":3: reading " + filepath.Join(dir, "m3", "nope.txt") + ": no such file or directory"},
		{name: "privy.yaml env unset", mf: mf("m4", "    npmrc: {env: NPMRC}"), want: filepath.Join(dir, "m4", "privy.yaml") + ":3: environment variable NPMRC is not set or empty"},
		{name: "--private beats a good privy.yaml", private: filepath.Join(dir, "missing"), mf: mf("m5", "    npmrc: {env: NPMRC}"), env: "VALUE-env", want: "--private: reading"},
	}
	for _, tt := range tests {
		for _, required := range []bool{false, true} {
			name := tt.name
			if required {
				name += ", required"
			}
			t.Run(name, func(t *testing.T) {
				r := newTestResolver(tt.mf, c, hostDir)
				if tt.private != "" {
					r.private["npmrc"] = tt.private
				}
				r.getenv = func(k string) string {
					if k == "NPMRC" {
						return tt.env
					}
					return ""
				}
				secrets, sshIDs, warnings, err := r.resolveAll(ctx, &Mounts{Secrets: []Mount{{ID: "npmrc", Required: required}}})
				checkNoValues(t, append(values, []byte("VALUE-env")), resolutionStrings(secrets, sshIDs, warnings, err)...)
				if err == nil {
					t.Fatalf("resolveAll: got %d secrets (from %v) and no error, want an *UnresolvedError", len(secrets), secretsFrom(secrets))
				}
				missing := unresolvedOf(t, err)
				if len(missing) != 1 || missing[0].ID != "npmrc" || missing[0].Kind != "secret" || missing[0].Required != required {
					t.Fatalf("resolveAll: got missing %+v, want npmrc", missing)
				}
				if !containsPart(missing[0].Looked, tt.want) {
					t.Errorf("looked: got %q, want a part containing %q", missing[0].Looked, tt.want)
				}
				if secrets != nil || len(warnings) != 0 {
					t.Errorf("resolveAll: got secrets %v and warnings %+v with an error, want none", secretsFrom(secrets), warnings)
				}
			})
		}
	}
}

func secretsFrom(secrets []*Secret) []string {
	var out []string
	for _, s := range secrets {
		out = append(out, s.ID+" from "+s.From)
	}
	return out
}

func containsPart(parts []string, want string) bool {
	for _, p := range parts {
		if strings.Contains(p, want) {
			return true
		}
	}
	return false
}

func TestResolveUnresolved(t *testing.T) {
	ctx := context.Background()
	srv := servertest.Start(t)
	srv.Put(t, "found", []byte("VALUE-found"))
	c := srv.Client(t, srv.Token(t, "read:**"))
	dir := t.TempDir()
	hostDir := filepath.Join(dir, "private.d")
	if err := os.Mkdir(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	mf := testManifest(t, dir, "build:", "  secrets:", "    other: app/other", "  ssh:", "    other: git/key")
	ms := &Mounts{
		Secrets: []Mount{
			{ID: "a", Required: true},
			{ID: "opt"},
			{ID: "app/b", Required: true},
			{ID: "found", Required: true},
			{ID: "Bad Id", Required: true},
		},
		SSH: []Mount{{ID: "default", Required: true}, {ID: "gh"}},
	}
	notIn := "not in " + mf.Path
	wantMissing := []Unresolved{
		{ID: "a", Kind: "secret", Required: true, Looked: []string{"no --private", notIn, "no " + filepath.Join(hostDir, "a"), "no store secret a"}},
		{ID: "app/b", Kind: "secret", Required: true, Looked: []string{"no --private", notIn, "no store secret app/b"}},
		{ID: "Bad Id", Kind: "secret", Required: true, Looked: []string{"no --private", notIn, "no " + filepath.Join(hostDir, "Bad Id"), "not a store path"}},
		{ID: "default", Kind: "ssh", Required: true, Looked: []string{"not in the build: ssh: section of " + mf.Path}},
	}
	wantWarnings := []Unresolved{
		{ID: "opt", Kind: "secret", Looked: []string{"no --private", notIn, "no " + filepath.Join(hostDir, "opt"), "no store secret opt"}},
		{ID: "gh", Kind: "ssh", Looked: []string{"not in the build: ssh: section of " + mf.Path}},
	}

	r := newTestResolver(mf, c, hostDir)
	secrets, sshIDs, warnings, err := r.resolveAll(ctx, ms)
	checkNoValues(t, [][]byte{[]byte("VALUE-found")}, resolutionStrings(secrets, sshIDs, warnings, err)...)
	missing := unresolvedOf(t, err)
	if !reflect.DeepEqual(missing, wantMissing) {
		t.Errorf("missing:\ngot  %+v\nwant %+v", missing, wantMissing)
	}
	if !reflect.DeepEqual(warnings, wantWarnings) {
		t.Errorf("warnings:\ngot  %+v\nwant %+v", warnings, wantWarnings)
	}
	if secrets != nil || sshIDs != nil {
		t.Errorf("got secrets %v and ssh %+v with an error, want none", secretsFrom(secrets), sshIDs)
	}
	msg := err.Error()
	for _, want := range []string{"4 build secret id(s)", `secret "a": no --private; ` + notIn, `secret "app/b"`, `secret "Bad Id"`, `ssh "default"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error message: got %q, want it to contain %q", msg, want)
		}
	}
	for _, notWant := range []string{`"opt"`, `"gh"`, `"found"`} {
		if strings.Contains(msg, notWant) {
			t.Errorf("error message: got %q, want it not to name %s", msg, notWant)
		}
	}

	// Without a manifest, privy says so.
	r = newTestResolver(nil, c, "")
	_, _, warnings, err = r.resolveAll(ctx, &Mounts{Secrets: []Mount{{ID: "x"}}, SSH: []Mount{{ID: "default"}}})
	if err != nil {
		t.Fatalf("optional ids without a manifest: got error %v, want warnings", err)
	}
	wantWarnings = []Unresolved{
		{ID: "x", Kind: "secret", Looked: []string{"no --private", "no privy.yaml beside the Dockerfile", "no store secret x"}},
		{ID: "default", Kind: "ssh", Looked: []string{"no privy.yaml beside the Dockerfile to name its keys (build: ssh:)"}},
	}
	if !reflect.DeepEqual(warnings, wantWarnings) {
		t.Errorf("warnings without a manifest:\ngot  %+v\nwant %+v", warnings, wantWarnings)
	}

	// Everything optional and found nowhere: only warnings.
	r = newTestResolver(mf, c, hostDir)
	secrets, _, warnings, err = r.resolveAll(ctx, &Mounts{Secrets: []Mount{{ID: "opt"}, {ID: "found"}}})
	if err != nil {
		t.Fatalf("optional ids: got error %v, want warnings", err)
	}
	if len(warnings) != 1 || warnings[0].ID != "opt" {
		t.Errorf("optional ids: got warnings %+v, want opt", warnings)
	}
	if len(secrets) != 1 || secrets[0].ID != "found" || string(secrets[0].Value) != "VALUE-found" {
		t.Errorf("optional ids: got secrets %v, want found from the store", secretsFrom(secrets))
	}
}

func TestResolveDenied(t *testing.T) {
	ctx := context.Background()
	srv := servertest.Start(t)
	srv.Put(t, "other/db", []byte("VALUE-denied"))
	c := srv.Client(t, srv.Token(t, "read:app/**"))
	wantLooked := []string{"no --private", "no privy.yaml beside the Dockerfile", "store secret other/db: this token may not read it"}
	for _, required := range []bool{true, false} {
		r := newTestResolver(nil, c, "")
		secrets, sshIDs, warnings, err := r.resolveAll(ctx, &Mounts{Secrets: []Mount{{ID: "other/db", Required: required}}})
		checkNoValues(t, [][]byte{[]byte("VALUE-denied")}, resolutionStrings(secrets, sshIDs, warnings, err)...)
		if required {
			missing := unresolvedOf(t, err)
			if len(missing) != 1 || !reflect.DeepEqual(missing[0].Looked, wantLooked) {
				t.Errorf("required: got missing %+v, want other/db with looked %q", missing, wantLooked)
			}
			continue
		}
		if err != nil {
			t.Fatalf("optional: got error %v, want a warning", err)
		}
		if len(warnings) != 1 || !reflect.DeepEqual(warnings[0].Looked, wantLooked) {
			t.Errorf("optional: got warnings %+v, want other/db with looked %q", warnings, wantLooked)
		}
		if len(secrets) != 0 {
			t.Errorf("optional: got secrets %v, want none", secretsFrom(secrets))
		}
	}
}

func TestResolveNoClient(t *testing.T) {
	ctx := context.Background()
	const hint = "no token to read it with (set PRIVY_TOKEN or run privy login)"
	dir := t.TempDir()
	mf := testManifest(t, dir, "build:", "  secrets:", "    named: app/named", "  ssh:", "    default: git/key")

	t.Run("required store id", func(t *testing.T) {
		r := newTestResolver(nil, nil, "")
		_, _, _, err := r.resolveAll(ctx, &Mounts{Secrets: []Mount{{ID: "app/db", Required: true}}})
		missing := unresolvedOf(t, err)
		if len(missing) != 1 || !containsPart(missing[0].Looked, "store secret app/db: "+hint) {
			t.Errorf("got missing %+v, want app/db with the hint %q", missing, hint)
		}
	})
	t.Run("privy.yaml store source", func(t *testing.T) {
		r := newTestResolver(mf, nil, "")
		_, _, _, err := r.resolveAll(ctx, &Mounts{Secrets: []Mount{{ID: "named"}}})
		missing := unresolvedOf(t, err)
		if len(missing) != 1 || !containsPart(missing[0].Looked, mf.Path+":3: store path app/named: "+hint) {
			t.Errorf("got missing %+v, want named with the hint %q", missing, hint)
		}
	})
	t.Run("ssh key", func(t *testing.T) {
		r := newTestResolver(mf, nil, "")
		_, _, _, err := r.resolveAll(ctx, &Mounts{SSH: []Mount{{ID: "default"}}})
		missing := unresolvedOf(t, err)
		want := mf.Path + ":5: key git/key: no token to use it with (set PRIVY_TOKEN or run privy login)"
		if len(missing) != 1 || !containsPart(missing[0].Looked, want) {
			t.Errorf("got missing %+v, want default with %q", missing, want)
		}
	})
	// An optional id that resolves nowhere is a warning (BuildKit skips
	// its mount); having no token to look in the store with is no reason
	// to stop the build.
	t.Run("optional store id", func(t *testing.T) {
		r := newTestResolver(nil, nil, "")
		_, _, warnings, err := r.resolveAll(ctx, &Mounts{Secrets: []Mount{{ID: "app/db"}}})
		if err != nil {
			t.Fatalf("got error %v, want a warning", err)
		}
		if len(warnings) != 1 || !containsPart(warnings[0].Looked, hint) {
			t.Errorf("got warnings %+v, want app/db with the hint %q", warnings, hint)
		}
	})
}

func TestResolveHostDirNotReadable(t *testing.T) {
	ctx := context.Background()
	srv := servertest.Start(t)
	srv.Put(t, "npmrc", []byte("VALUE-store"))
	c := srv.Client(t, srv.Root)
	hostDir := t.TempDir()
	if err := os.Mkdir(filepath.Join(hostDir, "npmrc"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(hostDir, "locked"), []byte("VALUE-locked"))
	if err := os.Chmod(filepath.Join(hostDir, "locked"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("loop", filepath.Join(hostDir, "loop")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id, want string
	}{
		{"npmrc", "reading " + filepath.Join(hostDir, "npmrc") + ": not a regular file"},
		// Any error but "does not exist" stops: a symlink loop fails to
		// open for root too.
		{"loop", "reading " + filepath.Join(hostDir, "loop") + ": too many levels of symbolic links"},
	}
	// Root reads a file of mode 000, so the permission case runs only for
	// other users (it is not skipped: the loop case stands in for it).
	if os.Geteuid() != 0 {
		tests = append(tests, struct{ id, want string }{"locked", "reading " + filepath.Join(hostDir, "locked") + ": permission denied"})
	}
	for _, tt := range tests {
		for _, required := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s required=%v", tt.id, required), func(t *testing.T) {
				r := newTestResolver(nil, c, hostDir)
				secrets, sshIDs, warnings, err := r.resolveAll(ctx, &Mounts{Secrets: []Mount{{ID: tt.id, Required: required}}})
				checkNoValues(t, [][]byte{[]byte("VALUE-store"), []byte("VALUE-locked")}, resolutionStrings(secrets, sshIDs, warnings, err)...)
				missing := unresolvedOf(t, err)
				if len(missing) != 1 || !containsPart(missing[0].Looked, tt.want) {
					t.Errorf("got missing %+v and secrets %v, want %s with %q", missing, secretsFrom(secrets), tt.id, tt.want)
				}
			})
		}
	}
}

func TestResolveArgs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	mf := testManifest(t, dir, "build:", "  secrets:", "    npmrc: {env: NPMRC}", "  ssh:", "    default: git/key")
	r := newTestResolver(mf, nil, "")
	r.private["npmrc"] = filepath.Join(dir, "missing")
	r.argSecrets["npmrc"] = true
	r.argSecrets["nowhere"] = true
	r.argSSH["default"] = true
	r.argSSH["gh"] = true
	ms := &Mounts{
		Secrets: []Mount{{ID: "npmrc", Required: true}, {ID: "nowhere"}},
		SSH:     []Mount{{ID: "default", Required: true}, {ID: "gh"}},
	}
	secrets, sshIDs, warnings, err := r.resolveAll(ctx, ms)
	if err != nil {
		t.Fatalf("resolveAll: got error %v", err)
	}
	wantSecrets := []Secret{
		{ID: "npmrc", Required: true, From: FromArgs, Where: "--secret"},
		{ID: "nowhere", From: FromArgs, Where: "--secret"},
	}
	if len(secrets) != len(wantSecrets) {
		t.Fatalf("got secrets %v, want %+v", secretsFrom(secrets), wantSecrets)
	}
	for i, s := range secrets {
		if !reflect.DeepEqual(*s, wantSecrets[i]) {
			t.Errorf("secret %d: got %+v, want %+v", i, *s, wantSecrets[i])
		}
	}
	wantSSH := []*SSH{{ID: "default", Required: true, From: FromArgs}, {ID: "gh", From: FromArgs}}
	if !reflect.DeepEqual(sshIDs, wantSSH) {
		t.Errorf("ssh: got %+v, want %+v", sshIDs, wantSSH)
	}
	if len(warnings) != 0 {
		t.Errorf("got warnings %+v, want none", warnings)
	}
}

func TestResolveExtraPrivate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, "b"), []byte("VALUE-b"))
	writeTestFile(t, filepath.Join(dir, "a"), []byte("VALUE-a"))

	// --private files for ids the Dockerfile does not mount are passed too,
	// sorted by id, after the mounted ones.
	r := newTestResolver(nil, nil, "")
	r.private["zz-extra"] = filepath.Join(dir, "b")
	r.private["aa-extra"] = filepath.Join(dir, "a")
	r.private["mounted"] = filepath.Join(dir, "a")
	secrets, _, _, err := r.resolveAll(ctx, &Mounts{Secrets: []Mount{{ID: "mounted"}}})
	if err != nil {
		t.Fatalf("resolveAll: got error %v", err)
	}
	var got []string
	for _, s := range secrets {
		got = append(got, s.ID+"="+string(s.Value)+" from "+s.From)
	}
	want := []string{"mounted=VALUE-a from --private", "aa-extra=VALUE-a from --private", "zz-extra=VALUE-b from --private"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}

	r = newTestResolver(nil, nil, "")
	r.private["extra"] = filepath.Join(dir, "missing")
	r.private["ok"] = filepath.Join(dir, "a")
	secrets, sshIDs, warnings, err := r.resolveAll(ctx, &Mounts{})
	checkNoValues(t, [][]byte{[]byte("VALUE-a"), []byte("VALUE-b")}, resolutionStrings(secrets, sshIDs, warnings, err)...)
	missing := unresolvedOf(t, err)
	if len(missing) != 1 || missing[0].ID != "extra" || !containsPart(missing[0].Looked, "--private: reading") {
		t.Errorf("missing --private file for an unmounted id: got %+v, want extra", missing)
	}
}

func TestResolveSSH(t *testing.T) {
	ctx := context.Background()
	srv := servertest.Start(t)
	ed, rsaKey := newTestKey(t, "ed25519"), newTestKey(t, "rsa")
	srv.Put(t, "git/ed", ed.pem)
	srv.Put(t, "git/rsa", rsaKey.pem)
	srv.Put(t, "git/plain", []byte("VALUE-plain-not-a-key"))
	srv.Put(t, "other/key", ed.pem)
	c := srv.Client(t, srv.Token(t, "read:git/**"))
	dir := t.TempDir()
	mf := testManifest(t, dir,
		"build:",                          // 1
		"  ssh:",                          // 2
		"    default: git/ed",             // 3
		"    github: [git/ed, git/rsa]",   // 4
		"    missing:",                    // 5
		"      - git/ed",                  // 6
		"      - git/none",                // 7
		"    denied: other/key",           // 8
		"    broken: git/plain",           // 9
		"    both: [git/none, other/key]", // 10
	)
	values := [][]byte{ed.pem, rsaKey.pem, []byte("VALUE-plain-not-a-key")}
	edKey := SSHKey{Path: "git/ed", Fingerprint: ssh.FingerprintSHA256(ed.pub)}
	rsaSSHKey := SSHKey{Path: "git/rsa", Fingerprint: ssh.FingerprintSHA256(rsaKey.pub)}
	at := func(line string) string { return mf.Path + ":" + line + ": " }

	tests := []struct {
		id         string
		want       *SSH
		wantLooked []string // when it does not resolve
	}{
		{id: "default", want: &SSH{ID: "default", From: FromManifest, Keys: []SSHKey{edKey}}},
		{id: "github", want: &SSH{ID: "github", From: FromManifest, Keys: []SSHKey{edKey, rsaSSHKey}}},
		{id: "missing", wantLooked: []string{at("7") + "key git/none: no such secret"}},
		{id: "denied", wantLooked: []string{at("8") + "key other/key: this token may not read it"}},
		{id: "broken", wantLooked: []string{at("9") + `key git/plain: secret "git/plain" is not an OpenSSH or PEM private key`}},
		{id: "both", wantLooked: []string{at("10") + "key git/none: no such secret", at("10") + "key other/key: this token may not read it"}},
	}
	for _, tt := range tests {
		for _, required := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s required=%v", tt.id, required), func(t *testing.T) {
				r := newTestResolver(mf, c, "")
				secrets, sshIDs, warnings, err := r.resolveAll(ctx, &Mounts{SSH: []Mount{{ID: tt.id, Required: required}}})
				checkNoValues(t, values, resolutionStrings(secrets, sshIDs, warnings, err)...)
				if tt.want != nil {
					if err != nil {
						t.Fatalf("resolveAll: got error %v", err)
					}
					want := *tt.want
					want.Required = required
					if len(sshIDs) != 1 || !reflect.DeepEqual(*sshIDs[0], want) {
						t.Errorf("resolveAll: got %+v, want %+v", sshIDs, want)
					}
					return
				}
				// A key privy.yaml names that fails stops the build, even
				// for an optional id.
				missing := unresolvedOf(t, err)
				if len(missing) != 1 || missing[0].Kind != "ssh" || missing[0].ID != tt.id {
					t.Fatalf("resolveAll: got missing %+v, want ssh %s", missing, tt.id)
				}
				if !reflect.DeepEqual(missing[0].Looked, tt.wantLooked) {
					t.Errorf("looked:\ngot  %q\nwant %q", missing[0].Looked, tt.wantLooked)
				}
			})
		}
	}
}

func TestParsePrivate(t *testing.T) {
	tests := []struct {
		in      string
		want    Private
		wantErr string
	}{
		{in: "id=npmrc,src=/home/u/.npmrc", want: Private{ID: "npmrc", Src: "/home/u/.npmrc"}},
		{in: "source=f,id=a", want: Private{ID: "a", Src: "f"}},
		{in: "id=a", wantErr: "needs both id= and src="},
		{in: "src=f", wantErr: "needs both id= and src="},
		{in: "id=a,src=f,mode=0400", wantErr: `unknown part "mode=0400"`},
		{in: "id=a,src=/x,y", wantErr: `unknown part "y"`},
		{in: "", wantErr: `unknown part ""`},
	}
	for _, tt := range tests {
		got, err := ParsePrivate(tt.in)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("ParsePrivate(%q): got error %v, want %+v", tt.in, err, tt.want)
		case tt.wantErr == "" && got != tt.want:
			t.Errorf("ParsePrivate(%q): got %+v, want %+v", tt.in, got, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ParsePrivate(%q): got %+v, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
		}
	}
}

func TestSecretName(t *testing.T) {
	tests := []struct {
		s    Secret
		want string
	}{
		{Secret{ID: "db", Path: "app/db", Where: "app/db", Value: []byte("VALUE")}, "app/db"},
		{Secret{ID: "npmrc", Where: "/home/u/.npmrc", Value: []byte("VALUE")}, "id npmrc (/home/u/.npmrc)"},
		{Secret{ID: "tok", Where: "$TOKEN", Value: []byte("VALUE")}, "id tok ($TOKEN)"},
	}
	for _, tt := range tests {
		if got := tt.s.Name(); got != tt.want {
			t.Errorf("Name(%+v): got %q, want %q", secretNoValue(&tt.s), got, tt.want)
		}
	}
}

func TestValidFileName(t *testing.T) {
	for id, want := range map[string]bool{
		"npmrc": true, ".npmrc": true, "a b": true, "x,y=z": true,
		"": false, ".": false, "..": false, "app/db": false, "a\x00b": false, "/abs": false,
	} {
		if got := validFileName(id); got != want {
			t.Errorf("validFileName(%q): got %v, want %v", id, got, want)
		}
	}
}

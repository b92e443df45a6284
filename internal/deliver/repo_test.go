package deliver

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	"golang.org/x/crypto/ssh"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/testenv"
)

// someHostKey is a public key no server here has.
const someHostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"

// Plaintexts the tests encrypt; no error may show them.
const (
	dbPassword = "db-password-4c1f0e"
	apiToken   = "api-token-\x00\x01binary-9d2a"
)

// encrypt returns plaintext encrypted to id, armored or binary.
func encrypt(t *testing.T, id *age.X25519Identity, plaintext string, armored bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	var dst io.Writer = &buf
	var aw io.WriteCloser
	if armored {
		aw = armor.NewWriter(&buf)
		dst = aw
	}
	enc, err := age.Encrypt(dst, id.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(enc, plaintext); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	if aw != nil {
		if err := aw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// secrets are values no error of a test may contain.
type secrets []string

func (s secrets) check(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, v := range s {
		if v != "" && strings.Contains(err.Error(), v) {
			t.Errorf("error %q contains a secret value", err)
		}
	}
}

// wantErr checks that err wraps kind (if not nil) and says each of says.
func wantErr(t *testing.T, err, kind error, says ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one saying %q", says)
	}
	if kind != nil && !errors.Is(err, kind) {
		t.Errorf("error %q does not wrap %v", err, kind)
	}
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
}

// summary is a File without Data, UID and GID, for comparisons.
type summary struct {
	Name, Origin string
	Mode         fs.FileMode
}

func summarize(files []File) []summary {
	out := make([]summary, len(files))
	for i, f := range files {
		out[i] = summary{f.Name, f.Origin, f.Mode}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func byName(files []File) map[string]File {
	m := make(map[string]File, len(files))
	for _, f := range files {
		m[f.Name] = f
	}
	return m
}

func ptr(i int) *int { return &i }

// fill commits a configuration repository to repo: main's last commit
// has dnsmasq.conf "port=5353", tag v1 and branch stable the commit
// before with "port=53". It returns the identity the .age files are
// encrypted to.
func fill(t *testing.T, repo *testenv.GitRepo) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	repo.Commit(t, map[string][]byte{
		"dnsmasq.conf":           []byte("port=53\n"),
		"dnsmasq.d/dhcp.conf":    []byte("dhcp-range=10.0.0.10,10.0.0.99\n"),
		"dnsmasq.d/hosts/lab":    []byte("10.0.0.1 lab\n"),
		"dnsmasq.d/notes/README": []byte("kept\n"),
		"secrets/db.env.age":     encrypt(t, id, dbPassword, true),
		"secrets/api-token.age":  encrypt(t, id, apiToken, false),
	})
	repo.Symlink(t, "dnsmasq.d/passwd", "/etc/passwd")
	repo.Tag(t, "v1")
	repo.Branch(t, "stable")
	repo.Commit(t, map[string][]byte{"dnsmasq.conf": []byte("port=5353\n")})
	return id
}

// errCase is a repository that FetchRepo must refuse.
type errCase struct {
	name string
	edit func(r *api.RenderedRepo)
	kind error    // wrapped by the error, if not nil
	says []string // in the error
}

// checkErrors runs FetchRepo on base edited by each case.
func checkErrors(t *testing.T, base api.RenderedRepo, leaks secrets, cases []errCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := base
			c.edit(&r)
			files, err := FetchRepo(t.Context(), r)
			if err == nil {
				t.Fatalf("got %d files, want an error", len(files))
			}
			wantErr(t, err, c.kind, c.says...)
			leaks.check(t, err)
		})
	}
}

func TestFetchRepoSSH(t *testing.T) {
	t.Parallel()
	keyFile, authorized := testenv.SSHKey(t)
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, otherPub := testenv.SSHKey(t)
	unauthorized, err := os.ReadFile(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	g := testenv.SSHGitServer(t, authorized)
	id := fill(t, g.GitRepo)
	base := api.RenderedRepo{
		ProfileRepo:      api.ProfileRepo{URL: g.RepoURL, Dir: "conf"},
		SSHKeyValue:      key,
		KnownHostsValue:  []byte(g.HostKey + "\n"),
		AgeIdentityValue: []byte(id.String() + "\n"),
	}
	leaks := secrets{string(key), string(unauthorized), id.String(), dbPassword, apiToken}
	origin := func(ref, p string) string { return "repo " + g.RepoURL + "@" + ref + ": " + p }

	t.Run("all files", func(t *testing.T) {
		r := base
		r.UID, r.GID = ptr(101), ptr(102)
		files, err := FetchRepo(t.Context(), r)
		if err != nil {
			t.Fatalf("%v\n%s", err, g.LogTail())
		}
		want := []summary{
			{"conf/README.md", origin("HEAD", "README.md"), 0o644},
			{"conf/dnsmasq.conf", origin("HEAD", "dnsmasq.conf"), 0o644},
			{"conf/dnsmasq.d/dhcp.conf", origin("HEAD", "dnsmasq.d/dhcp.conf"), 0o644},
			{"conf/dnsmasq.d/hosts/lab", origin("HEAD", "dnsmasq.d/hosts/lab"), 0o644},
			{"conf/dnsmasq.d/notes/README", origin("HEAD", "dnsmasq.d/notes/README"), 0o644},
			{"conf/secrets/api-token", origin("HEAD", "secrets/api-token.age"), 0o400},
			{"conf/secrets/db.env", origin("HEAD", "secrets/db.env.age"), 0o400},
			{"conf/token.txt", origin("HEAD", "token.txt"), 0o644},
		}
		if got := summarize(files); !slices.Equal(got, want) {
			t.Errorf("files:\ngot  %v\nwant %v", got, want)
		}
		m := byName(files)
		for name, want := range map[string]string{
			"conf/dnsmasq.conf":        "port=5353\n",
			"conf/dnsmasq.d/hosts/lab": "10.0.0.1 lab\n",
			"conf/secrets/db.env":      dbPassword,
			"conf/secrets/api-token":   apiToken,
			"conf/token.txt":           g.Content["token.txt"],
		} {
			if got := string(m[name].Data); got != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
		for _, f := range files {
			if f.UID != 101 || f.GID != 102 {
				t.Errorf("%s owned by %d:%d, want 101:102", f.Name, f.UID, f.GID)
			}
		}
	})

	t.Run("tag", func(t *testing.T) {
		r := base
		r.Ref = "v1"
		r.Files = []api.RepoFile{{Src: "dnsmasq.conf"}}
		files, err := FetchRepo(t.Context(), r)
		if err != nil {
			t.Fatalf("%v\n%s", err, g.LogTail())
		}
		if len(files) != 1 || string(files[0].Data) != "port=53\n" {
			t.Errorf("files = %v, want dnsmasq.conf of tag v1 (port=53)", summarize(files))
		}
	})

	hostKeyFields := strings.Fields(g.HostKey) // [127.0.0.1]:PORT TYPE KEY
	ecdsaPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecdsaPub, err := ssh.NewPublicKey(&ecdsaPriv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	ecdsaKey := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(ecdsaPub))) // the server has only ed25519
	checkErrors(t, base, leaks, []errCase{
		{"host key mismatch", func(r *api.RenderedRepo) {
			r.KnownHostsValue = []byte(hostKeyFields[0] + " " + otherPub + "\n")
		}, ErrHostKey, []string{g.RepoURL, "host key mismatch"}},
		{"host key of another type", func(r *api.RenderedRepo) {
			r.KnownHostsValue = []byte(hostKeyFields[0] + " " + ecdsaKey + "\n")
		}, ErrHostKey, []string{g.RepoURL, "no key of a type"}},
		{"host not in known_hosts", func(r *api.RenderedRepo) {
			r.KnownHostsValue = []byte("[127.0.0.1]:1 " + strings.Join(hostKeyFields[1:], " ") + "\n")
		}, ErrHostKey, []string{g.RepoURL, "no key for [127.0.0.1]:"}},
		{"no known_hosts", func(r *api.RenderedRepo) { r.KnownHostsValue = nil },
			nil, []string{g.RepoURL, "known_hosts:"}},
		{"unauthorized key", func(r *api.RenderedRepo) { r.SSHKeyValue = unauthorized },
			ErrRepoAuth, []string{g.RepoURL, "authentication failed"}},
		{"no key", func(r *api.RenderedRepo) { r.SSHKeyValue = nil },
			nil, []string{g.RepoURL, "ssh_key:"}},
	})
}

// TestFetchRepoContent checks which files FetchRepo returns, over http
// to 127.0.0.1 since the transport does not change them and sshd is slow
// to start a session.
func TestFetchRepoContent(t *testing.T) {
	t.Parallel()
	repo := testenv.NewGitRepo(t)
	id := fill(t, repo)
	srv := gitHTTPServer(t, filepath.Dir(repo.RepoDir), "reader", "reader-Pa55word")
	url := srv.URL + "/" + filepath.Base(repo.RepoDir)
	base := api.RenderedRepo{
		ProfileRepo:      api.ProfileRepo{URL: url, Username: "reader"},
		PasswordValue:    []byte("reader-Pa55word"),
		AgeIdentityValue: []byte(id.String() + "\n"),
	}
	other, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	leaks := secrets{"reader-Pa55word", id.String(), other.String(), dbPassword, apiToken}
	origin := func(ref, p string) string { return "repo " + url + "@" + ref + ": " + p }

	t.Run("selected files and modes", func(t *testing.T) {
		r := base
		r.Mode = 0o640
		r.Files = []api.RepoFile{
			{Src: "dnsmasq.conf", Dest: "etc/dnsmasq.conf"},
			{Src: "dnsmasq.d/", Dest: "etc/dnsmasq.d", Mode: 0o600},
			{Src: "secrets/db.env.age"},
			{Src: "secrets/api-token.age", Dest: "token", Mode: 0o444},
		}
		files, err := FetchRepo(t.Context(), r)
		if err != nil {
			t.Fatal(err)
		}
		want := []summary{
			{"etc/dnsmasq.conf", origin("HEAD", "dnsmasq.conf"), 0o640},
			{"etc/dnsmasq.d/dhcp.conf", origin("HEAD", "dnsmasq.d/dhcp.conf"), 0o600},
			{"etc/dnsmasq.d/hosts/lab", origin("HEAD", "dnsmasq.d/hosts/lab"), 0o600},
			{"etc/dnsmasq.d/notes/README", origin("HEAD", "dnsmasq.d/notes/README"), 0o600},
			{"secrets/db.env", origin("HEAD", "secrets/db.env.age"), 0o640},
			{"token", origin("HEAD", "secrets/api-token.age"), 0o444},
		}
		if got := summarize(files); !slices.Equal(got, want) {
			t.Errorf("files:\ngot  %v\nwant %v", got, want)
		}
		m := byName(files)
		for name, want := range map[string]string{
			"etc/dnsmasq.conf":        "port=5353\n",
			"etc/dnsmasq.d/hosts/lab": "10.0.0.1 lab\n",
			"secrets/db.env":          dbPassword,
			"token":                   apiToken,
		} {
			if got := string(m[name].Data); got != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
	})

	for _, ref := range []string{"", "main", "stable", "v1", "refs/tags/v1"} {
		t.Run("ref "+ref, func(t *testing.T) {
			t.Parallel()
			r := base
			r.Ref = ref
			r.Files = []api.RepoFile{{Src: "dnsmasq.conf"}}
			files, err := FetchRepo(t.Context(), r)
			if err != nil {
				t.Fatal(err)
			}
			want, shown := "port=53\n", ref
			switch ref {
			case "":
				want, shown = "port=5353\n", "HEAD"
			case "main":
				want = "port=5353\n"
			}
			if len(files) != 1 || string(files[0].Data) != want || files[0].Origin != origin(shown, "dnsmasq.conf") {
				t.Errorf("files = %+v, want dnsmasq.conf from %s holding %q", summarize(files), shown, want)
			}
		})
	}

	checkErrors(t, base, leaks, []errCase{
		{"ref not found", func(r *api.RenderedRepo) { r.Ref = "nope" },
			ErrRefNotFound, []string{url, `ref "nope" not found`}},
		{"listed file missing", func(r *api.RenderedRepo) {
			r.Ref = "v1"
			r.Files = []api.RepoFile{{Src: "dnsmasq.conf"}, {Src: "missing.conf"}}
		}, ErrRepoFileMissing, []string{url, "at v1", "missing.conf not found"}},
		{"listed directory missing", func(r *api.RenderedRepo) { r.Files = []api.RepoFile{{Src: "nodir/"}} },
			ErrRepoFileMissing, []string{url, "at HEAD", "nodir/ not found"}},
		{"directory without slash", func(r *api.RenderedRepo) { r.Files = []api.RepoFile{{Src: "dnsmasq.d"}} },
			nil, []string{"dnsmasq.d is a directory"}},
		{"file with slash", func(r *api.RenderedRepo) { r.Files = []api.RepoFile{{Src: "dnsmasq.conf/"}} },
			nil, []string{"dnsmasq.conf/ is not a directory"}},
		{"symlink listed", func(r *api.RenderedRepo) { r.Files = []api.RepoFile{{Src: "dnsmasq.d/passwd"}} },
			nil, []string{"dnsmasq.d/passwd is not a regular file"}},
		{"src outside", func(r *api.RenderedRepo) { r.Files = []api.RepoFile{{Src: "../x"}} },
			nil, []string{"not a clean relative path"}},
		{"dest outside", func(r *api.RenderedRepo) {
			r.Files = []api.RepoFile{{Src: "dnsmasq.conf", Dest: "../../etc/x"}}
		}, nil, []string{"not a clean relative path"}},
		{"age without identity", func(r *api.RenderedRepo) { r.AgeIdentityValue = nil },
			nil, []string{"secrets/api-token.age", "age_identity:"}},
		{"age with another identity", func(r *api.RenderedRepo) {
			r.AgeIdentityValue = []byte(other.String())
			r.Files = []api.RepoFile{{Src: "secrets/db.env.age"}}
		}, nil, []string{"secrets/db.env.age", "decrypting"}},
		{"age identity not age", func(r *api.RenderedRepo) {
			r.AgeIdentityValue = []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n")
		}, nil, []string{"age_identity", "not age identities"}},
	})
}

func TestFetchRepoUnreachable(t *testing.T) {
	t.Parallel()
	keyFile, _ := testenv.SSHKey(t)
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	// A port nothing listens on any more.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	hostKey := "[127.0.0.1]:" + addr[strings.LastIndex(addr, ":")+1:] + " " + someHostKey
	r := api.RenderedRepo{
		ProfileRepo:     api.ProfileRepo{URL: "ssh://git@" + addr + "/srv/conf.git"},
		SSHKeyValue:     key,
		KnownHostsValue: []byte(hostKey + "\n"),
	}
	_, err = FetchRepo(t.Context(), r)
	wantErr(t, err, ErrRepoUnreachable, "ssh://git@"+addr+"/srv/conf.git", "unreachable")
	secrets{string(key)}.check(t, err)
}

func TestFetchRepoHonoursContext(t *testing.T) {
	t.Parallel()
	keyFile, _ := testenv.SSHKey(t)
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	// A server that accepts and never speaks: the ssh handshake hangs.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	defer func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close() // ends the clone left running
		}
	}()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	addr := l.Addr().String()
	r := api.RenderedRepo{
		ProfileRepo: api.ProfileRepo{URL: "ssh://git@" + addr + "/srv/conf.git"},
		SSHKeyValue: key,
		KnownHostsValue: []byte("[127.0.0.1]:" + addr[strings.LastIndex(addr, ":")+1:] +
			" " + someHostKey + "\n"),
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = FetchRepo(ctx, r)
	wantErr(t, err, context.DeadlineExceeded, "ssh://git@"+addr)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("FetchRepo returned %v after its context ended", d)
	}
}

// gitHTTPServer serves the bare repositories in root with git-http-backend
// on 127.0.0.1, to clients that send user and password.
func gitHTTPServer(t *testing.T, root, user, password string) *httptest.Server {
	t.Helper()
	testenv.Require(t, "git", testenv.SetupHint)
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		testenv.Unavailable(t, "git --exec-path", testenv.SetupHint, err)
	}
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		testenv.Unavailable(t, "git-http-backend", testenv.SetupHint, err)
	}
	cgiHandler := &cgi.Handler{
		Path: backend,
		Env: []string{
			"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if u, p, ok := req.BasicAuth(); !ok || u != user || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="privy test"`)
			http.Error(w, "who are you?", http.StatusUnauthorized)
			return
		}
		cgiHandler.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestFetchRepoHTTPBasicAuth(t *testing.T) {
	t.Parallel()
	repo := testenv.NewGitRepo(t)
	const user, password = "deploy", "s3cret-Pa55word"
	srv := gitHTTPServer(t, filepath.Dir(repo.RepoDir), user, password)
	url := srv.URL + "/" + filepath.Base(repo.RepoDir)
	leaks := secrets{password, "wrong-Pa55word"}

	t.Run("username and password", func(t *testing.T) {
		files, err := FetchRepo(t.Context(), api.RenderedRepo{
			ProfileRepo:   api.ProfileRepo{URL: url, Username: user, Files: []api.RepoFile{{Src: "token.txt"}}},
			PasswordValue: []byte(password),
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(files) != 1 || string(files[0].Data) != repo.Content["token.txt"] {
			t.Errorf("files = %v, want token.txt", summarize(files))
		}
	})
	t.Run("password in the URL", func(t *testing.T) {
		withPassword := strings.Replace(url, "http://", "http://"+user+":"+password+"@", 1)
		files, err := FetchRepo(t.Context(), api.RenderedRepo{ProfileRepo: api.ProfileRepo{URL: withPassword}})
		if err != nil {
			leaks.check(t, err)
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.Contains(f.Origin, password) {
				t.Errorf("origin %q holds the password", f.Origin)
			}
		}
	})
	for _, c := range []struct {
		name string
		r    api.RenderedRepo
	}{
		{"wrong password", api.RenderedRepo{
			ProfileRepo:   api.ProfileRepo{URL: url, Username: user},
			PasswordValue: []byte("wrong-Pa55word"),
		}},
		{"wrong password in the URL", api.RenderedRepo{ProfileRepo: api.ProfileRepo{
			URL: strings.Replace(url, "http://", "http://"+user+":wrong-Pa55word@", 1),
		}}},
		{"no credentials", api.RenderedRepo{ProfileRepo: api.ProfileRepo{URL: url}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := FetchRepo(t.Context(), c.r)
			wantErr(t, err, ErrRepoAuth, url[len("http://"):], "authentication failed")
			leaks.check(t, err)
		})
	}
}

func TestFetchRepoTooLarge(t *testing.T) {
	t.Parallel()
	random := make([]byte, 64<<10)
	rand.Read(random)
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"pack", random},                  // the pack itself is too large
		{"unpacked", make([]byte, 1<<20)}, // a small pack of a large file
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			repo := testenv.NewGitRepo(t)
			repo.Commit(t, map[string][]byte{"big.bin": c.data})
			srv := gitHTTPServer(t, filepath.Dir(repo.RepoDir), "reader", "reader-Pa55word")
			r := api.RenderedRepo{
				ProfileRepo:   api.ProfileRepo{URL: srv.URL + "/" + filepath.Base(repo.RepoDir), Username: "reader"},
				PasswordValue: []byte("reader-Pa55word"),
			}
			if _, err := fetchRepo(t.Context(), r, 2<<20); err != nil {
				t.Fatalf("fetching within the limit: %v", err)
			}
			_, err := fetchRepo(t.Context(), r, 16<<10)
			wantErr(t, err, ErrRepoTooLarge, "larger than the 16 KiB")
		})
	}
}

func TestFetchRepoChecksTLS(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake we fail
	srv.StartTLS()
	defer srv.Close()
	_, err := FetchRepo(t.Context(), api.RenderedRepo{
		ProfileRepo:   api.ProfileRepo{URL: srv.URL + "/repo.git", Username: "u"},
		PasswordValue: []byte("tls-Pa55word"),
	})
	wantErr(t, err, nil, srv.URL, "certificate")
	secrets{"tls-Pa55word"}.check(t, err)
}

// TestFetchRepoRefusesBeforeDialing checks that URLs privy must not fetch
// are refused from their text alone: the loopback listener sees no
// connection, and the others are never looked up.
func TestFetchRepoRefusesBeforeDialing(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	addr := l.Addr().String()
	keyFile, _ := testenv.SSHKey(t)
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		r    api.RenderedRepo
		says []string
	}{
		{"file URL", api.RenderedRepo{ProfileRepo: api.ProfileRepo{URL: "file:///srv/conf.git"}},
			[]string{"file:///srv/conf.git", "local path is refused"}},
		{"absolute path", api.RenderedRepo{ProfileRepo: api.ProfileRepo{URL: "/srv/conf.git"}},
			[]string{"local path is refused"}},
		{"relative path", api.RenderedRepo{ProfileRepo: api.ProfileRepo{URL: "conf.git"}},
			[]string{"local path is refused"}},
		{"http to another host", api.RenderedRepo{
			ProfileRepo:   api.ProfileRepo{URL: "http://deploy:url-Pa55word@example.invalid/conf.git", Username: "deploy"},
			PasswordValue: []byte("value-Pa55word"),
		}, []string{"http://deploy:xxxxx@example.invalid/conf.git", "use https://"}},
		{"git protocol", api.RenderedRepo{ProfileRepo: api.ProfileRepo{URL: "git://example.invalid/conf.git"}},
			[]string{"unsupported protocol", "git://example.invalid"}},
		{"ssh without known_hosts", api.RenderedRepo{
			ProfileRepo: api.ProfileRepo{URL: "ssh://git@" + addr + "/conf.git"},
			SSHKeyValue: key,
		}, []string{"known_hosts:"}},
		{"scp-like without known_hosts", api.RenderedRepo{
			ProfileRepo: api.ProfileRepo{URL: "git@example.invalid:org/conf.git"},
			SSHKeyValue: key,
		}, []string{"git@example.invalid:org/conf.git", "known_hosts:"}},
		{"ssh without a key for the host", api.RenderedRepo{
			ProfileRepo:     api.ProfileRepo{URL: "ssh://git@" + addr + "/conf.git"},
			SSHKeyValue:     key,
			KnownHostsValue: []byte("example.invalid " + someHostKey + "\n"),
		}, []string{"no key for [127.0.0.1]:"}},
		{"ssh key unreadable", api.RenderedRepo{
			ProfileRepo:     api.ProfileRepo{URL: "ssh://git@" + addr + "/conf.git"},
			SSHKeyValue:     []byte("not a key"),
			KnownHostsValue: []byte("[127.0.0.1]:1 " + someHostKey + "\n"),
		}, []string{"reading the ssh_key"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := FetchRepo(t.Context(), c.r)
			wantErr(t, err, nil, c.says...)
			secrets{"url-Pa55word", "value-Pa55word", string(key)}.check(t, err)
		})
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the loopback listener saw %d connections, want none", n)
	}
}

func TestRedactURL(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"https://git.example.com/org/conf.git", "https://git.example.com/org/conf.git"},
		{"https://deploy:t0ken@git.example.com/conf.git", "https://deploy:xxxxx@git.example.com/conf.git"},
		{"https://deploy@git.example.com/conf.git", "https://deploy@git.example.com/conf.git"},
		{"ssh://git@127.0.0.1:2222/srv/conf.git", "ssh://git@127.0.0.1:2222/srv/conf.git"},
		{"git@github.com:org/conf.git", "git@github.com:org/conf.git"},
		{"git:t0ken@github.com:org/conf.git", "git:xxxxx@github.com:org/conf.git"},
		// The user meant "t0/k#en" as the password; url.Parse would not.
		{"https://deploy:t0/k#en@git.example.com/conf.git", "https:xxxxx@git.example.com/conf.git"},
	} {
		if got := RedactURL(c.in); got != c.want {
			t.Errorf("RedactURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func FuzzRedactURL(f *testing.F) {
	f.Add("t0ken-value")
	f.Add("a/b#c@d")
	f.Fuzz(func(t *testing.T, password string) {
		const user, host = "deploy", "git.example.com"
		if len(password) < 4 || strings.Contains("https://"+user+host+":org/conf.git xxxxx", password) {
			return // could match the rest of the URL
		}
		for _, raw := range []string{
			"https://" + user + ":" + password + "@" + host + "/conf.git",
			user + ":" + password + "@" + host + ":org/conf.git",
		} {
			if got := RedactURL(raw); strings.Contains(got, password) {
				t.Errorf("RedactURL(%q) = %q, which holds the password", raw, got)
			}
		}
	})
}

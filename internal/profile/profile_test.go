package profile_test

import (
	"net"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/profile"
)

func intp(i int) *int { return &i }

// full is a profile that uses every field Validate checks.
func full() api.Profile {
	return api.Profile{
		Name: "web.prod_1-a",
		Files: []api.ProfileFile{
			{Name: "db/password", Secret: "app/db/password", Owner: api.Owner{Mode: 0o440, UID: intp(1000), GID: intp(1000)}},
			{Name: "tls.key", Secret: "app/tls/key"},
		},
		Prefixes: []api.ProfilePrefix{
			{Prefix: "app/env/", Dir: "env", Owner: api.Owner{Mode: 0o400, UID: intp(0), GID: intp(1<<31 - 1)}},
			{Prefix: "shared/"},
		},
		Repos: []api.ProfileRepo{
			{URL: "ssh://git@github.com/org/config.git", Ref: "main", Dir: "config", SSHKey: "git/deploy-key", KnownHosts: "git/known-hosts",
				AgeIdentity: "git/age", Files: []api.RepoFile{{Src: "nginx/", Dest: "etc/nginx/"}, {Src: "app.yaml", Mode: 0o444}}},
			{URL: "git@gitlab.com:org/other.git", KnownHosts: "git/known-hosts"},
			{URL: "https://example.com/org/repo.git", Username: "bot", Password: "git/token"},
			{URL: "http://127.0.0.1:3000/org/repo.git"},
		},
		HostPrivate: true,
		Post:        []string{"/bin/sh", "-c", "update-ca-certificates"},
		OnRotate:    "HUP",
	}
}

func TestValidateAcceptsFullProfile(t *testing.T) {
	if err := profile.Validate(full()); err != nil {
		t.Fatalf("Validate(full profile) = %v, want nil", err)
	}
	for _, p := range []api.Profile{
		{Name: "a", HostPrivate: true},
		{Name: "0", Files: []api.ProfileFile{{Name: "x", Secret: "x"}}},
		{Name: strings.Repeat("a", 63), Prefixes: []api.ProfilePrefix{{Prefix: "a/"}}},
		{Name: "r", Repos: []api.ProfileRepo{{URL: "http://localhost/r.git"}}},
		{Name: "n", HostPrivate: true, Post: nil, OnRotate: "sigusr1"},
	} {
		if err := profile.Validate(p); err != nil {
			t.Errorf("Validate(%+v) = %v, want nil", p, err)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name   string
		change func(p *api.Profile)
		want   string // a part of the error message
	}{
		{"empty name", func(p *api.Profile) { p.Name = "" }, "profile name"},
		{"upper-case name", func(p *api.Profile) { p.Name = "Web" }, "profile name"},
		{"name starting with '-'", func(p *api.Profile) { p.Name = "-web" }, "profile name"},
		{"name with '/'", func(p *api.Profile) { p.Name = "a/b" }, "profile name"},
		{"name too long", func(p *api.Profile) { p.Name = strings.Repeat("a", 64) }, "profile name"},
		{"nothing delivered", func(p *api.Profile) { *p = api.Profile{Name: "web", Post: []string{"true"}} }, "delivers nothing"},

		{"empty file name", func(p *api.Profile) { p.Files[0].Name = "" }, "empty file name"},
		{"absolute file name", func(p *api.Profile) { p.Files[0].Name = "/etc/passwd" }, "absolute"},
		{"file name with ..", func(p *api.Profile) { p.Files[0].Name = "../escape" }, "not a clean relative path"},
		{"file name with inner ..", func(p *api.Profile) { p.Files[0].Name = "a/../../b" }, "not a clean relative path"},
		{"file name with ./", func(p *api.Profile) { p.Files[0].Name = "./a" }, "not a clean relative path"},
		{"file name with //", func(p *api.Profile) { p.Files[0].Name = "a//b" }, "not a clean relative path"},
		{"file name with trailing /", func(p *api.Profile) { p.Files[0].Name = "a/" }, "not a clean relative path"},
		{"file name .", func(p *api.Profile) { p.Files[0].Name = "." }, "not a clean relative path"},
		{"file name of privy's own", func(p *api.Profile) { p.Files[0].Name = "d/.privy-tmp-x" }, "privy's own"},
		{"duplicate file names", func(p *api.Profile) { p.Files[1].Name = p.Files[0].Name }, `two files named "db/password"`},

		{"secret path upper-case", func(p *api.Profile) { p.Files[0].Secret = "App/DB" }, `file "db/password"`},
		{"secret path absolute", func(p *api.Profile) { p.Files[0].Secret = "/app/db" }, "starts with '/'"},
		{"secret path empty", func(p *api.Profile) { p.Files[0].Secret = "" }, "path is empty"},
		{"secret path with ..", func(p *api.Profile) { p.Files[0].Secret = "app/../x" }, "'..'"},

		{"prefix without /", func(p *api.Profile) { p.Prefixes[0].Prefix = "app/env" }, "must end in '/'"},
		{"prefix bad path", func(p *api.Profile) { p.Prefixes[0].Prefix = "App/" }, `prefix "App/"`},
		{"prefix only /", func(p *api.Profile) { p.Prefixes[0].Prefix = "/" }, "path is empty"},
		{"prefix dir escaping", func(p *api.Profile) { p.Prefixes[0].Dir = "../etc" }, "dir:"},
		{"prefix dir absolute", func(p *api.Profile) { p.Prefixes[0].Dir = "/etc" }, "absolute"},

		{"file mode setuid", func(p *api.Profile) { p.Files[0].Mode = 0o4755 }, "only permission bits"},
		{"file mode sticky", func(p *api.Profile) { p.Files[0].Mode = 0o1777 }, "only permission bits"},
		{"prefix mode setgid", func(p *api.Profile) { p.Prefixes[0].Mode = 0o2755 }, "only permission bits"},
		{"repo mode setuid", func(p *api.Profile) { p.Repos[0].Mode = 0o4700 }, "only permission bits"},
		{"negative uid", func(p *api.Profile) { p.Files[0].UID = intp(-1) }, "out of range"},
		{"uid too large", func(p *api.Profile) { p.Files[0].UID = intp(1 << 31) }, "out of range"},
		{"gid too large", func(p *api.Profile) { p.Prefixes[0].GID = intp(1 << 32) }, "out of range"},

		{"repo file://", func(p *api.Profile) { p.Repos[0].URL = "file:///srv/git/config.git" }, `scheme "file" is not supported`},
		{"repo plain path", func(p *api.Profile) { p.Repos[0].URL = "/srv/git/config.git" }, "is not supported"},
		{"repo relative path", func(p *api.Profile) { p.Repos[0].URL = "config.git" }, "is not supported"},
		{"repo http to another host", func(p *api.Profile) { p.Repos[3].URL = "http://git.example.com/r.git" }, "loopback"},
		{"repo http to localhost lookalike", func(p *api.Profile) { p.Repos[3].URL = "http://localhost.example.com/r.git" }, "loopback"},
		{"repo https without host", func(p *api.Profile) { p.Repos[2].URL = "https:///org/repo.git" }, "no host"},
		{"repo ssh without known_hosts", func(p *api.Profile) { p.Repos[0].KnownHosts = "" }, "known_hosts"},
		{"repo scp-like without known_hosts", func(p *api.Profile) { p.Repos[1].KnownHosts = "" }, "known_hosts"},
		{"repo bad ssh_key path", func(p *api.Profile) { p.Repos[0].SSHKey = "Git/Key" }, "ssh_key:"},
		{"repo bad password path", func(p *api.Profile) { p.Repos[2].Password = "/git/token" }, "password:"},
		{"repo bad dir", func(p *api.Profile) { p.Repos[0].Dir = "../config" }, "dir:"},
		{"repo file src escaping", func(p *api.Profile) { p.Repos[0].Files[0].Src = "../secrets/" }, "files: src:"},
		{"repo file dest absolute", func(p *api.Profile) { p.Repos[0].Files[0].Dest = "/etc/nginx/" }, "files: dest:"},
		{"repo file mode setuid", func(p *api.Profile) { p.Repos[0].Files[1].Mode = 0o4755 }, "only permission bits"},

		{"unknown signal", func(p *api.Profile) { p.OnRotate = "SIGFOO" }, "unknown signal"},
		{"signal number", func(p *api.Profile) { p.OnRotate = "9" }, "unknown signal"},
		{"empty post", func(p *api.Profile) { p.Post = []string{} }, "post is an empty command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := full()
			tt.change(&p)
			err := profile.Validate(p)
			if err == nil {
				t.Fatalf("Validate = nil, want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %q, want it to contain %q", err, tt.want)
			}
			if p.Name != "" && !strings.Contains(err.Error(), p.Name) {
				t.Errorf("Validate = %q, want it to name the profile %q", err, p.Name)
			}
		})
	}
}

// TestValidateHidesRepoPassword checks that a repository error does not
// repeat a password written into the URL.
func TestValidateHidesRepoPassword(t *testing.T) {
	p := full()
	p.Repos[2].URL = "https://bot:hunter2-pw@example.com/org/repo.git"
	p.Repos[2].Password = "Bad Path"
	err := profile.Validate(p)
	if err == nil {
		t.Fatal("Validate = nil, want an error for the password path")
	}
	if strings.Contains(err.Error(), "hunter2-pw") {
		t.Errorf("Validate = %q, which holds the URL's password", err)
	}
	if !strings.Contains(err.Error(), "example.com") {
		t.Errorf("Validate = %q, want it to name the repository", err)
	}
}

func TestCheckName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"web", true},
		{"0", true},
		{"9lives", true},
		{"a.b_c-d", true},
		{strings.Repeat("x", 63), true},
		{"", false},
		{strings.Repeat("x", 64), false},
		{"Web", false},
		{".web", false},
		{"_web", false},
		{"-web", false},
		{"web/x", false},
		{"web x", false},
		{"wéb", false},
	}
	for _, tt := range tests {
		err := profile.CheckName(tt.name)
		if got := err == nil; got != tt.ok {
			t.Errorf("CheckName(%q) = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

func TestParseRepoURL(t *testing.T) {
	tests := []struct {
		raw                    string
		scheme, user, host, pa string
	}{
		{"ssh://git@github.com/org/repo.git", "ssh", "git", "github.com", "/org/repo.git"},
		{"ssh://git@github.com:2222/org/repo.git", "ssh", "git", "github.com:2222", "/org/repo.git"},
		{"git@github.com:org/repo.git", "ssh", "git", "github.com", "/org/repo.git"},
		{"git@github.com:/org/repo.git", "ssh", "git", "github.com", "/org/repo.git"},
		{"deploy_1@git.example.com:repo", "ssh", "deploy_1", "git.example.com", "/repo"},
		{"git@[::1]:org/repo.git", "ssh", "git", "[::1]", "/org/repo.git"},
		{"https://github.com/org/repo.git", "https", "", "github.com", "/org/repo.git"},
		{"https://bot@example.com/repo.git", "https", "bot", "example.com", "/repo.git"},
		{"http://127.0.0.1/org/repo.git", "http", "", "127.0.0.1", "/org/repo.git"},
		{"http://127.0.0.1:3000/org/repo.git", "http", "", "127.0.0.1:3000", "/org/repo.git"},
		{"http://127.8.9.1/r", "http", "", "127.8.9.1", "/r"},
		{"http://[::1]:8080/r", "http", "", "[::1]:8080", "/r"},
		{"http://localhost/r", "http", "", "localhost", "/r"},
	}
	for _, tt := range tests {
		u, err := profile.ParseRepoURL(tt.raw)
		if err != nil {
			t.Errorf("ParseRepoURL(%q) = %v, want ok", tt.raw, err)
			continue
		}
		if u.Scheme != tt.scheme || u.User.Username() != tt.user || u.Host != tt.host || u.Path != tt.pa {
			t.Errorf("ParseRepoURL(%q) = scheme %q user %q host %q path %q, want %q %q %q %q",
				tt.raw, u.Scheme, u.User.Username(), u.Host, u.Path, tt.scheme, tt.user, tt.host, tt.pa)
		}
	}
}

func TestParseRepoURLRejects(t *testing.T) {
	tests := []struct{ raw, want string }{
		{"file:///srv/repo.git", `scheme "file"`},
		{"/srv/repo.git", `scheme ""`},
		{"../repo.git", `scheme ""`},
		{"repo.git", `scheme ""`},
		{"ftp://example.com/repo.git", `scheme "ftp"`},
		{"git://example.com/repo.git", `scheme "git"`},
		{"http://example.com/repo.git", "loopback"},
		{"http://10.0.0.1/repo.git", "loopback"},
		{"http://localhost.example.com/repo.git", "loopback"},
		{"https:///repo.git", "no host"},
		{"ssh:///repo.git", "no host"},
		{"https://exa mple.com/repo.git", "malformed"},
		{"", `scheme ""`},
	}
	for _, tt := range tests {
		u, err := profile.ParseRepoURL(tt.raw)
		if err == nil {
			t.Errorf("ParseRepoURL(%q) = %v, want an error containing %q", tt.raw, u, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseRepoURL(%q) = %q, want it to contain %q", tt.raw, err, tt.want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ raw, want string }{
		{"https://bot:hunter2@example.com/org/repo.git", "https://bot:xxxxx@example.com/org/repo.git"},
		{"https://bot:p@ss@example.com/org/repo.git", "https://bot:xxxxx@example.com/org/repo.git"},
		{"https://bot@example.com/org/repo.git", "https://bot@example.com/org/repo.git"},
		{"https://example.com/org/repo.git", "https://example.com/org/repo.git"},
		{"ssh://git@github.com/org/repo.git", "ssh://git@github.com/org/repo.git"},
		{"git@github.com:org/repo.git", "git@github.com:org/repo.git"},
	}
	for _, tt := range tests {
		if got := profile.RedactURL(tt.raw); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

// TestRedactURLHidesPasswordOfMalformedURL shows a bug: RedactURL returns
// a URL that url.Parse rejects unchanged, password and all. A password
// with an unescaped '%', ' ', '#', '/' or '?' is enough, and Validate
// (then the server's 400 reply and the audit log's reason) repeats it.
func TestRedactURLHidesPasswordOfMalformedURL(t *testing.T) {
	for _, raw := range []string{
		"https://bot:hunter2%zz@example.com/org/repo.git",
		"https://bot:hunter2 x@example.com/org/repo.git",
		"https://bot:hunter2#x@example.com/org/repo.git",
		"https://bot:hunter2/x@example.com/org/repo.git",
		"https://bot:hunter2?x@example.com/org/repo.git",
	} {
		if got := profile.RedactURL(raw); strings.Contains(got, "hunter2") {
			t.Errorf("RedactURL(%q) = %q, which holds the password", raw, got)
		}
		p := api.Profile{Name: "web", Repos: []api.ProfileRepo{{URL: raw}}}
		if err := profile.Validate(p); err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Validate(repo %q) = %v, want an error without the password", raw, err)
		}
	}
}

func TestSignal(t *testing.T) {
	tests := []struct {
		name string
		want unix.Signal
	}{
		{"HUP", unix.SIGHUP},
		{"SIGHUP", unix.SIGHUP},
		{"sighup", unix.SIGHUP},
		{" hup ", unix.SIGHUP},
		{"usr1", unix.SIGUSR1},
		{"SIGUSR2", unix.SIGUSR2},
		{"term", unix.SIGTERM},
		{"SIGINT", unix.SIGINT},
		{"WINCH", unix.SIGWINCH},
	}
	for _, tt := range tests {
		got, err := profile.Signal(tt.name)
		if err != nil || got != tt.want {
			t.Errorf("Signal(%q) = %v, %v; want %v", tt.name, got, err, tt.want)
			continue
		}
		if n := unix.SignalName(got); n != unix.SignalName(tt.want) {
			t.Errorf("Signal(%q) is named %q, want %q", tt.name, n, unix.SignalName(tt.want))
		}
	}
	if got, _ := profile.Signal("HUP"); unix.SignalName(got) != "SIGHUP" {
		t.Errorf(`Signal("HUP") is named %q, want "SIGHUP"`, unix.SignalName(got))
	}
	for _, bad := range []string{"", "SIG", "FOO", "SIGFOO", "9", "HUP1", "SIG HUP"} {
		if got, err := profile.Signal(bad); err == nil {
			t.Errorf("Signal(%q) = %v, want an error", bad, got)
		}
	}
}

func TestModeAndIDs(t *testing.T) {
	tests := []struct {
		name     string
		o        api.Owner
		def      uint32
		mode     uint32
		uid, gid int
	}{
		{"zero owner", api.Owner{}, profile.DefaultMode, 0o400, 0, 0},
		{"other default", api.Owner{}, 0o644, 0o644, 0, 0},
		{"uid only", api.Owner{Mode: 0o640, UID: intp(1000)}, profile.DefaultMode, 0o640, 1000, 0},
		{"gid only", api.Owner{GID: intp(33)}, profile.DefaultMode, 0o400, 0, 33},
		{"both", api.Owner{Mode: 0o444, UID: intp(0), GID: intp(1<<31 - 1)}, profile.DefaultMode, 0o444, 0, 1<<31 - 1},
	}
	for _, tt := range tests {
		if got := profile.Mode(tt.o, tt.def); got != tt.mode {
			t.Errorf("%s: Mode = %#o, want %#o", tt.name, got, tt.mode)
		}
		if uid, gid := profile.IDs(tt.o); uid != tt.uid || gid != tt.gid {
			t.Errorf("%s: IDs = %d, %d; want %d, %d", tt.name, uid, gid, tt.uid, tt.gid)
		}
	}
}

// FuzzParseRepoURL checks what ParseRepoURL promises of any address it
// accepts: a supported scheme, a host, and plain http only to loopback.
func FuzzParseRepoURL(f *testing.F) {
	for _, s := range []string{
		"ssh://git@github.com/org/repo.git", "git@github.com:org/repo.git", "https://example.com/r",
		"http://127.0.0.1:3000/r", "http://example.com/r", "file:///srv/r", "/srv/r", "git@[::1]:r",
		"https://u:p@h/r", "http://localhost/r",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := profile.ParseRepoURL(raw)
		if err != nil {
			return
		}
		if u.Host == "" {
			t.Errorf("ParseRepoURL(%q) has no host", raw)
		}
		switch u.Scheme {
		case "ssh", "https":
		case "http":
			h := u.Hostname()
			if ip := net.ParseIP(h); h != "localhost" && (ip == nil || !ip.IsLoopback()) {
				t.Errorf("ParseRepoURL(%q) accepted http:// to %q", raw, h)
			}
		default:
			t.Errorf("ParseRepoURL(%q) accepted scheme %q", raw, u.Scheme)
		}
		_ = profile.RedactURL(raw)
	})
}

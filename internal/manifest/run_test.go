package manifest_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/manifest"
	"github.com/privyhq/privy/internal/profile"
)

func id(n int) *int { return &n }

// example is the manifest of docs/manifest.md's run: section.
var example = y(
	"version: 1",
	"run:",
	"  profiles:",
	"    web:",
	"      files:",
	"        db_password: app/web/db-password",
	`        tls/key.pem: {secret: app/web/tls-key, mode: "0400", uid: 1000, gid: 1000}`,
	"      prefixes:",
	`        - {prefix: app/web/certs/, dir: certs, mode: "0440"}`,
	"      host_private: true",
	"      on_rotate: SIGHUP",
	"    dns:",
	"      repos:",
	"        - url: ssh://git@config.example:22/ops/dns.git",
	"          ref: main",
	"          dir: etc",
	"          ssh_key: ops/deploy-key",
	"          known_hosts: ops/known-hosts",
	"          age_identity: ops/age-key",
	"          files:",
	"            - dnsmasq.conf",
	"            - {src: tftp/, dest: tftp/}",
	`            - {src: hosts, dest: hosts.d/hosts, mode: "0444"}`,
	"        - {url: https://git.example/ops/x.git, username: deploy, password: ops/git-token}",
	`      post: ["/bin/sh", "-c", "dnsmasq --test"]`,
	`      mode: "0440"`,
)

var exampleProfiles = []api.Profile{
	{
		Name: "dns",
		Repos: []api.ProfileRepo{
			{
				URL: "ssh://git@config.example:22/ops/dns.git", Ref: "main", Dir: "etc",
				Files: []api.RepoFile{
					{Src: "dnsmasq.conf"},
					{Src: "tftp/", Dest: "tftp/"},
					{Src: "hosts", Dest: "hosts.d/hosts", Mode: 0o444},
				},
				SSHKey: "ops/deploy-key", KnownHosts: "ops/known-hosts", AgeIdentity: "ops/age-key",
				Owner: api.Owner{Mode: 0o440},
			},
			{URL: "https://git.example/ops/x.git", Username: "deploy", Password: "ops/git-token", Owner: api.Owner{Mode: 0o440}},
		},
		Post: []string{"/bin/sh", "-c", "dnsmasq --test"},
	},
	{
		Name: "web",
		Files: []api.ProfileFile{
			{Name: "db_password", Secret: "app/web/db-password"},
			{Name: "tls/key.pem", Secret: "app/web/tls-key", Owner: api.Owner{Mode: 0o400, UID: id(1000), GID: id(1000)}},
		},
		Prefixes:    []api.ProfilePrefix{{Prefix: "app/web/certs/", Dir: "certs", Owner: api.Owner{Mode: 0o440}}},
		HostPrivate: true,
		OnRotate:    "SIGHUP",
	},
}

func TestParseRunExample(t *testing.T) {
	f, err := manifest.Parse("privy.yaml", []byte(example))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if f.Run == nil || !reflect.DeepEqual(f.Run.Profiles, exampleProfiles) {
		t.Errorf("got Run\n\t%s\nwant\n\t%s", show(f.Run), show(&manifest.Run{Profiles: exampleProfiles}))
	}
}

// show formats r with the values behind its uid and gid pointers.
func show(r *manifest.Run) string {
	if r == nil {
		return "nil"
	}
	var b strings.Builder
	owner := func(o api.Owner) {
		fmt.Fprintf(&b, " mode=%#o uid=%s gid=%s", o.Mode, ptr(o.UID), ptr(o.GID))
	}
	for _, p := range r.Profiles {
		fmt.Fprintf(&b, "\n\t%s: host_private=%v on_rotate=%q post=%q", p.Name, p.HostPrivate, p.OnRotate, p.Post)
		for _, f := range p.Files {
			fmt.Fprintf(&b, "\n\t\tfile %q <- %s", f.Name, f.Secret)
			owner(f.Owner)
		}
		for _, x := range p.Prefixes {
			fmt.Fprintf(&b, "\n\t\tprefix %s -> %q", x.Prefix, x.Dir)
			owner(x.Owner)
		}
		for _, x := range p.Repos {
			fmt.Fprintf(&b, "\n\t\trepo %+v", x.Files)
			x.Files = nil
			fmt.Fprintf(&b, " %+v", x)
			owner(x.Owner)
		}
	}
	return b.String()
}

func ptr(p *int) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}

// run lines as a manifest: "run:", "  profiles:", then lines.
func run(lines ...string) string { return y(append([]string{"run:", "  profiles:"}, lines...)...) }

var runParseTests = []struct {
	name string
	in   string
	want *manifest.Run
}{
	{name: "no run", in: y("version: 1"), want: nil},
	{name: "null run", in: y("run:"), want: nil},
	{name: "empty run", in: y("run: {}"), want: &manifest.Run{}},
	{name: "null profiles", in: y("run:", "  profiles:"), want: &manifest.Run{}},
	{
		name: "host_private only",
		in:   run("    web: {host_private: true}"),
		want: &manifest.Run{Profiles: []api.Profile{{Name: "web", HostPrivate: true}}},
	},
	{
		name: "profiles and files sorted by name",
		in: run(
			"    zeta: {files: {b: x/b, a: x/a, a.d/c: x/c}}",
			"    0web: {host_private: true}",
			"    "+strings.Repeat("a", 63)+": {host_private: true}",
		),
		want: &manifest.Run{Profiles: []api.Profile{
			{Name: "0web", HostPrivate: true},
			{Name: strings.Repeat("a", 63), HostPrivate: true},
			{Name: "zeta", Files: []api.ProfileFile{{Name: "a", Secret: "x/a"}, {Name: "a.d/c", Secret: "x/c"}, {Name: "b", Secret: "x/b"}}},
		}},
	},
	{
		name: "defaults fill what entries leave out",
		in: run(
			"    web:",
			`      mode: "0440"`,
			"      uid: 1000",
			"      gid: 0",
			"      files:",
			"        a: x/a",
			`        b: {secret: x/b, mode: "0400", uid: 0}`,
			"      prefixes: [x/p/]",
			"      repos:",
			"        - {url: https://h/r.git, gid: 5}",
		),
		want: &manifest.Run{Profiles: []api.Profile{{
			Name: "web",
			Files: []api.ProfileFile{
				{Name: "a", Secret: "x/a", Owner: api.Owner{Mode: 0o440, UID: id(1000), GID: id(0)}},
				{Name: "b", Secret: "x/b", Owner: api.Owner{Mode: 0o400, UID: id(0), GID: id(0)}},
			},
			Prefixes: []api.ProfilePrefix{{Prefix: "x/p/", Owner: api.Owner{Mode: 0o440, UID: id(1000), GID: id(0)}}},
			Repos:    []api.ProfileRepo{{URL: "https://h/r.git", Owner: api.Owner{Mode: 0o440, UID: id(1000), GID: id(5)}}},
		}}},
	},
	{
		name: "modes",
		in: run(
			"    web:",
			"      files:",
			`        a: {secret: x, mode: "440"}`,
			`        b: {secret: x, mode: "0777"}`,
			`        c: {secret: x, mode: "7"}`,
			`        d: {secret: x, mode: '0600'}`,
			`        e: {secret: x, mode: "01"}`,
		),
		want: &manifest.Run{Profiles: []api.Profile{{Name: "web", Files: []api.ProfileFile{
			{Name: "a", Secret: "x", Owner: api.Owner{Mode: 0o440}},
			{Name: "b", Secret: "x", Owner: api.Owner{Mode: 0o777}},
			{Name: "c", Secret: "x", Owner: api.Owner{Mode: 0o7}},
			{Name: "d", Secret: "x", Owner: api.Owner{Mode: 0o600}},
			{Name: "e", Secret: "x", Owner: api.Owner{Mode: 0o1}},
		}}}},
	},
	{
		name: "ids",
		in:   run("    web: {files: {a: {secret: x, uid: 2147483647, gid: 0x10}}}"),
		want: &manifest.Run{Profiles: []api.Profile{{Name: "web", Files: []api.ProfileFile{
			{Name: "a", Secret: "x", Owner: api.Owner{UID: id(1<<31 - 1), GID: id(16)}},
		}}}},
	},
	{
		name: "signals",
		in: run(
			"    a: {host_private: true, on_rotate: HUP}",
			"    b: {host_private: true, on_rotate: SIGUSR1}",
			"    c: {host_private: true, on_rotate: TERM}",
		),
		want: &manifest.Run{Profiles: []api.Profile{
			{Name: "a", HostPrivate: true, OnRotate: "SIGHUP"},
			{Name: "b", HostPrivate: true, OnRotate: "SIGUSR1"},
			{Name: "c", HostPrivate: true, OnRotate: "SIGTERM"},
		}},
	},
	{
		name: "post with an empty argument",
		in:   run(`    web: {host_private: true, post: [/bin/sh, -c, ""]}`),
		want: &manifest.Run{Profiles: []api.Profile{{Name: "web", HostPrivate: true, Post: []string{"/bin/sh", "-c", ""}}}},
	},
	{
		name: "prefixes",
		in: run(
			"    web:",
			"      prefixes:",
			"        - app/web/",
			"        - {prefix: app/certs/, dir: certs/live}",
			"        - {prefix: app/more/, dir: certs/live}", // the same directory twice
		),
		want: &manifest.Run{Profiles: []api.Profile{{Name: "web", Prefixes: []api.ProfilePrefix{
			{Prefix: "app/web/"},
			{Prefix: "app/certs/", Dir: "certs/live"},
			{Prefix: "app/more/", Dir: "certs/live"},
		}}}},
	},
	{
		name: "repo URLs",
		in: run(
			"    web:",
			"      repos:",
			"        - {url: 'git@github.com:ops/x.git', known_hosts: k}",
			"        - {url: 'git@[::1]:x', known_hosts: k, ssh_key: s}",
			"        - {url: ssh://h/x, known_hosts: k}",
			"        - {url: http://127.0.0.1:8080/x.git}",
			"        - {url: https://deploy@git.example/x.git, ref: v1.2.0}",
		),
		want: &manifest.Run{Profiles: []api.Profile{{Name: "web", Repos: []api.ProfileRepo{
			{URL: "git@github.com:ops/x.git", KnownHosts: "k"},
			{URL: "git@[::1]:x", KnownHosts: "k", SSHKey: "s"},
			{URL: "ssh://h/x", KnownHosts: "k"},
			{URL: "http://127.0.0.1:8080/x.git"},
			{URL: "https://deploy@git.example/x.git", Ref: "v1.2.0"},
		}}}},
	},
	{
		name: "a file inside a prefix's directory",
		in: run(
			"    web:",
			"      files: {certs/extra.pem: x}",
			"      prefixes: [{prefix: app/certs/, dir: certs}]",
		),
		want: &manifest.Run{Profiles: []api.Profile{{
			Name:     "web",
			Files:    []api.ProfileFile{{Name: "certs/extra.pem", Secret: "x"}},
			Prefixes: []api.ProfilePrefix{{Prefix: "app/certs/", Dir: "certs"}},
		}}},
	},
	{
		name: "odd but valid names, anchors",
		in: run(
			"    web:",
			"      files:",
			"        2024: &s app/x",
			"        ...: *s",
			"        .a/b c/é: app/y",
		),
		want: &manifest.Run{Profiles: []api.Profile{{Name: "web", Files: []api.ProfileFile{
			{Name: "...", Secret: "app/x"},
			{Name: ".a/b c/é", Secret: "app/y"},
			{Name: "2024", Secret: "app/x"},
		}}}},
	},
}

func TestParseRunSection(t *testing.T) {
	for _, tt := range runParseTests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := manifest.Parse("privy.yaml", []byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(f.Run, tt.want) {
				t.Errorf("got Run %s, want %s", show(f.Run), show(tt.want))
			}
		})
	}
}

func TestDefaultIDsNotShared(t *testing.T) {
	f, err := manifest.Parse("privy.yaml", []byte(run("    web: {uid: 7, gid: 8, files: {a: x, b: y}}")))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	a, b := f.Run.Profiles[0].Files[0], f.Run.Profiles[0].Files[1]
	if a.UID == b.UID || a.GID == b.GID {
		t.Errorf("files a and b share a uid or gid pointer; want a copy each")
	}
}

// TestProfilesValidate checks that every profile the parser accepts is
// one internal/profile (the server's check) accepts too.
func TestProfilesValidate(t *testing.T) {
	ins := []string{example}
	for _, tt := range runParseTests {
		ins = append(ins, tt.in)
	}
	for _, in := range ins {
		f, err := manifest.Parse("privy.yaml", []byte(in))
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if f.Run == nil {
			continue
		}
		for _, p := range f.Run.Profiles {
			if err := profile.Validate(p); err != nil {
				t.Errorf("profile.Validate(%s): %v", p.Name, err)
			}
		}
	}
}

// TestDocExamples parses every yaml block of docs/manifest.md with the
// parser and the schema.
func TestDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/manifest.md")
	if err != nil {
		t.Fatal(err)
	}
	sch := compileSchema(t)
	var block *bytes.Buffer
	var start, n int
	sc := bufio.NewScanner(bytes.NewReader(doc))
	for line := 1; sc.Scan(); line++ {
		switch text := sc.Text(); {
		case block == nil && text == "```yaml":
			block, start = new(bytes.Buffer), line
		case block != nil && text == "```":
			if _, err := manifest.Parse("privy.yaml", block.Bytes()); err != nil {
				t.Errorf("docs/manifest.md:%d: %v", start, err)
			}
			if err := sch.Validate(asJSON(t, block.String())); err != nil {
				t.Errorf("docs/manifest.md:%d: schema: %v", start, err)
			}
			block, n = nil, n+1
		case block != nil:
			block.WriteString(text + "\n")
		}
	}
	if n < 3 {
		t.Errorf("found %d yaml blocks in docs/manifest.md, want at least 3", n)
	}
}

var runErrorTests = []struct {
	name      string
	in        string
	line, col int
	msg       string
}{
	// The section and profile names.
	{"unknown run key", y("run:", "  profile: {}"), 2, 3, `unknown key "profile" in run (known: profiles)`},
	{"run is a string", y("run: web"), 1, 6, "run: want a mapping with profiles, got a string"},
	{"profiles is a list", y("run:", "  profiles: [web]"), 2, 13, "run.profiles: want a mapping from profile name to profile"},
	{"uppercase profile name", run("    Web: {host_private: true}"), 3, 5, `profile name "Web": use 1 to 63 lowercase letters`},
	{"profile name with a leading dot", run("    .web: {host_private: true}"), 3, 5, `profile name ".web"`},
	{"profile name too long", run("    " + strings.Repeat("a", 64) + ": {host_private: true}"), 3, 5, "profile name"},
	{"empty profile name", run("    '': {host_private: true}"), 3, 5, `profile name ""`},
	{"duplicate profile", run("    web: {host_private: true}", "    web: {host_private: true}"), 4, 5, `key "web" given twice in run.profiles (first on line 3)`},

	// What a profile holds.
	{"null profile", run("    web:"), 3, 5, `profile "web" delivers nothing; give at least one of files, prefixes, repos or host_private: true`},
	{"empty files", run("    web: {files: {}, prefixes: []}"), 3, 5, `profile "web" delivers nothing`},
	{"host_private false", run("    web: {host_private: false}"), 3, 5, `profile "web" delivers nothing`},
	{"profile a list", run("    web: [a]"), 3, 10, `profile "web": want a mapping with files, prefixes, repos or host_private, got a list`},
	{"unknown profile key", run("    web: {file: {}}"), 3, 11, `unknown key "file" in profile "web" (known: files, prefixes, repos, host_private, on_rotate, post, mode, uid, gid)`},
	{"host_private a string", run("    web: {host_private: yes}"), 3, 25, `profile "web": host_private: want true or false, got a string`},

	// files.
	{"files a list", run("    web: {files: [a]}"), 3, 18, `profile "web": files: want a mapping from file name to store path`},
	{"absolute file name", run("    web:", "      files:", "        /etc/x: app/x"), 5, 9, `profile "web": file name "/etc/x" is absolute; give a path relative to the mount`},
	{"file name with ..", run("    web:", "      files:", "        ../x: app/x"), 5, 9, `file name "../x" is not a clean relative path`},
	{"file name with a trailing slash", run("    web:", "      files:", "        x/: app/x"), 5, 9, `file name "x/" is not a clean relative path`},
	{"file name with //", run("    web:", "      files:", "        a//b: app/x"), 5, 9, "is not a clean relative path"},
	{"file name with NUL", run("    web:", "      files:", `        "a\0b": app/x`), 5, 9, "holds a NUL byte"},
	{"privy's own file name", run("    web:", "      files:", "        d/.privy-tmp-x: app/x"), 5, 9, "names starting with \".privy-tmp-\" are privy's own"},
	{"empty file name", run("    web:", "      files:", "        '': app/x"), 5, 9, `profile "web": empty file name`},
	{"long file name is clipped", run("    web:", "      files:", "        /"+strings.Repeat("a", 1000)+": app/x"), 5, 9, `file name "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"… is absolute`},
	{"bad store path", run("    web:", "      files:", "        a: App/x"), 5, 12, `profile "web" file "a": invalid store path "App/x": segment "App"`},
	{"file null", run("    web:", "      files:", "        a:"), 5, 11, `profile "web" file "a" has no secret; write a store path`},
	{"file a list", run("    web:", "      files:", "        a: [x]"), 5, 12, `profile "web" file "a": want a store path, or a mapping with secret`},
	{"file without secret", run("    web:", "      files:", `        a: {mode: "0400"}`), 5, 12, `profile "web" file "a" has no secret; give secret: <store path>`},
	{"unknown file key", run("    web:", "      files:", "        a: {secret: x, owner: 1}"), 5, 24, `unknown key "owner" in profile "web" file "a" (known: secret, mode, uid, gid)`},
	{"secret a number", run("    web:", "      files:", "        a: {secret: 7}"), 5, 21, `profile "web" file "a": store path: want a string, got a number; put it in quotes`},

	// Modes.
	{"mode decimal", run("    web:", "      files:", "        a: {secret: x, mode: 400}"), 5, 30, `profile "web" file "a": mode: got the number 400; YAML does not read modes as octal, so quote it: mode: "0400"`},
	{"mode YAML octal", run("    web:", "      files:", "        a: {secret: x, mode: 0640}"), 5, 30, `got the number 0640; YAML does not read modes as octal, so quote it: mode: "0640"`},
	{"mode YAML 0o", run("    web:", "      files:", "        a: {secret: x, mode: 0o44}"), 5, 30, `quote it: mode: "0044"`},
	{"mode a big number", run("    web:", "      files:", "        a: {secret: x, mode: 4755}"), 5, 30, `mode: got the number "4755"; write 1 to 4 octal digits in quotes, like mode: "0400"`},
	{"mode a float", run("    web:", "      files:", "        a: {secret: x, mode: 4.5}"), 5, 30, `mode: got the number "4.5"`},
	{"mode setuid", run("    web:", "      files:", `        a: {secret: x, mode: "4755"}`), 5, 30, `mode "4755" sets the setuid, setgid or sticky bit, which privy does not allow`},
	{"mode sticky", run("    web:", "      files:", `        a: {secret: x, mode: "1777"}`), 5, 30, "sticky bit"},
	{"mode zero", run("    web:", "      files:", `        a: {secret: x, mode: "0000"}`), 5, 30, `mode "0000" gives no permission`},
	{"mode not octal", run("    web:", "      files:", `        a: {secret: x, mode: "0800"}`), 5, 30, `mode "0800" is not an octal file mode; write 1 to 4 octal digits in quotes`},
	{"mode five digits", run("    web:", "      files:", `        a: {secret: x, mode: "00400"}`), 5, 30, `mode "00400" is not an octal file mode`},
	{"mode symbolic", run("    web:", "      files:", `        a: {secret: x, mode: "rw-r--r--"}`), 5, 30, "is not an octal file mode"},
	{"mode 0o string", run("    web:", "      files:", `        a: {secret: x, mode: "0o400"}`), 5, 30, "is not an octal file mode"},
	{"mode empty", run("    web:", "      files:", `        a: {secret: x, mode: ""}`), 5, 30, `mode "" is not an octal file mode`},
	{"mode a boolean", run("    web:", "      files:", "        a: {secret: x, mode: true}"), 5, 30, "mode: want a string, got a boolean; put it in quotes"},
	{"profile mode", run("    web:", "      mode: 440", "      host_private: true"), 4, 13, `profile "web": mode: got the number 440; YAML does not read modes as octal, so quote it: mode: "0440"`},

	// Ids.
	{"uid negative", run("    web:", "      files:", "        a: {secret: x, uid: -1}"), 5, 29, `profile "web" file "a": uid "-1" is out of range; give a number from 0 to 2147483647`},
	{"uid too big", run("    web:", "      files:", "        a: {secret: x, uid: 2147483648}"), 5, 29, `uid "2147483648" is out of range`},
	{"gid huge", run("    web:", "      files:", "        a: {secret: x, gid: 99999999999999999999}"), 5, 29, "gid"},
	{"uid quoted", run("    web:", "      files:", `        a: {secret: x, uid: "1000"}`), 5, 29, "uid: want a number from 0 to 2147483647, got a string; write it without quotes"},
	{"uid a name", run("    web:", "      files:", "        a: {secret: x, uid: www}"), 5, 29, "uid: want a number from 0 to 2147483647, got a string"},
	{"gid a float", run("    web:", "      files:", "        a: {secret: x, gid: 1.5}"), 5, 29, "gid: want a number from 0 to 2147483647, got a number; write a whole number"},
	{"profile gid", run("    web:", "      gid: [1]", "      host_private: true"), 4, 12, `profile "web": gid: want a number`},

	// prefixes.
	{"prefixes a mapping", run("    web: {prefixes: {prefix: a/}}"), 3, 21, `profile "web": prefixes: want a list`},
	{"prefix without a slash", run("    web:", "      prefixes:", "        - {prefix: app/web/certs}"), 5, 20, `profile "web" prefix #1: prefix "app/web/certs" does not end in '/'; write "app/web/certs/"`},
	{"prefix short form without a slash", run("    web:", "      prefixes: [a/, b]"), 4, 22, `profile "web" prefix #2: prefix "b" does not end in '/'`},
	{"bad prefix", run("    web:", "      prefixes:", "        - {prefix: App/}"), 5, 20, `profile "web" prefix #1: invalid prefix "App/": segment "App" has a character outside`},
	{"prefix slash", run("    web:", "      prefixes:", "        - {prefix: /}"), 5, 20, `invalid prefix "/": path is empty`},
	{"prefix empty", run("    web:", "      prefixes:", "        - {prefix: ''}"), 5, 20, "prefix is empty; write a store path ending in '/'"},
	{"prefix missing", run("    web:", "      prefixes:", "        - {dir: certs}"), 5, 11, `profile "web" prefix #1 has no prefix; give prefix: <store path ending in '/'>`},
	{"prefix dir absolute", run("    web:", "      prefixes:", "        - {prefix: a/, dir: /certs}"), 5, 29, `profile "web" prefix #1: dir: file name "/certs" is absolute`},
	{"prefix dir empty", run("    web:", "      prefixes:", "        - {prefix: a/, dir: ''}"), 5, 29, "dir: empty file name"},
	{"unknown prefix key", run("    web:", "      prefixes:", "        - {prefix: a/, path: b}"), 5, 24, `unknown key "path" in profile "web" prefix #1 (known: prefix, dir, mode, uid, gid)`},
	{"prefix a list", run("    web:", "      prefixes:", "        - [a/]"), 5, 11, `profile "web" prefix #1: want a mapping with prefix`},

	// repos.
	{"repos a mapping", run("    web: {repos: {url: x}}"), 3, 18, `profile "web": repos: want a list of mappings with url`},
	{"repo a string", run("    web:", "      repos: [https://h/x]"), 4, 15, `profile "web" repo #1: want a mapping with url`},
	{"repo without url", run("    web:", "      repos:", "        - {ref: main}"), 5, 11, `profile "web" repo #1 has no url; give url: ssh://…, https://… or user@host:path`},
	{"repo file url", run("    web:", "      repos:", "        - {url: 'file:///srv/x.git'}"), 5, 17, `profile "web" repo #1: url scheme "file" is not supported; use ssh://…, https://…, http://… (loopback only) or user@host:path`},
	{"repo git url", run("    web:", "      repos:", "        - {url: 'git://h/x.git'}"), 5, 17, `url scheme "git" is not supported`},
	{"repo local path", run("    web:", "      repos:", "        - {url: /srv/x.git}"), 5, 17, "url is not one privy fetches (local paths and file:// are not)"},
	{"repo scp without user", run("    web:", "      repos:", "        - {url: 'host:x.git', known_hosts: k}"), 5, 17, "url is not one privy fetches"},
	{"repo url empty", run("    web:", "      repos:", "        - {url: ''}"), 5, 17, "url is empty"},
	{"repo url with a space", run("    web:", "      repos:", "        - {url: 'https://h/a b'}"), 5, 17, "url contains whitespace or a control character"},
	{"repo url without host", run("    web:", "      repos:", "        - {url: 'https:///x'}"), 5, 17, "url has no host; write it like https://git.example/ops/config.git"},
	{"repo url a number", run("    web:", "      repos:", "        - {url: 7}"), 5, 17, "url: want a string, got a number"},
	{"repo url with a password", run("    web:", "      repos:", "        - {url: 'https://u:hunter2@h/x'}"), 5, 17, "url holds a password; remove it from the URL"},
	{"ssh repo without known_hosts", run("    web:", "      repos:", "        - url: ssh://git@h/x", "          ssh_key: k"), 5, 16, `profile "web" repo #1: an ssh URL needs known_hosts`},
	{"scp repo without known_hosts", run("    web:", "      repos:", "        - {url: 'git@h:x'}"), 5, 17, "an ssh URL needs known_hosts"},
	{"ssh repo with a username", run("    web:", "      repos:", "        - {url: 'git@h:x', known_hosts: k, username: u}"), 5, 44, `profile "web" repo #1: username is for https:// URLs`},
	{"ssh repo with a password", run("    web:", "      repos:", "        - {url: 'git@h:x', known_hosts: k, password: p}"), 5, 44, "password is for https:// URLs"},
	{"https repo with an ssh key", run("    web:", "      repos:", "        - {url: 'https://h/x', ssh_key: k}"), 5, 32, `profile "web" repo #1: ssh_key is for ssh URLs; an https:// URL authenticates with username and password`},
	{"https repo with known_hosts", run("    web:", "      repos:", "        - {url: 'https://h/x', known_hosts: k}"), 5, 32, "known_hosts is for ssh URLs"},
	{"ref empty", run("    web:", "      repos:", "        - {url: 'https://h/x', ref: ''}"), 5, 37, `profile "web" repo #1: ref "" is not a branch or tag name`},
	{"ref an option", run("    web:", "      repos:", "        - {url: 'https://h/x', ref: --upload-pack=x}"), 5, 37, `ref "--upload-pack=x" is not a branch or tag name`},
	{"ref with a space", run("    web:", "      repos:", "        - {url: 'https://h/x', ref: 'a b'}"), 5, 37, "is not a branch or tag name"},
	{"ref a number", run("    web:", "      repos:", "        - {url: 'https://h/x', ref: 1.0}"), 5, 37, "ref: want a string, got a number; put it in quotes"},
	{"username with a colon", run("    web:", "      repos:", "        - {url: 'https://h/x', username: 'a:b'}"), 5, 42, `username "a:b": write a user name without ':'`},
	{"bad password path", run("    web:", "      repos:", "        - {url: 'https://h/x', username: u, password: Tok}"), 5, 55, `profile "web" repo #1: invalid store path "Tok"`},
	{"bad ssh_key path", run("    web:", "      repos:", "        - {url: 'git@h:x', known_hosts: k, ssh_key: /k}"), 5, 53, `invalid store path "/k"`},
	{"bad age_identity path", run("    web:", "      repos:", "        - {url: 'https://h/x', age_identity: a//b}"), 5, 46, `invalid store path "a//b"`},
	{"repo dir absolute", run("    web:", "      repos:", "        - {url: 'https://h/x', dir: /etc}"), 5, 37, `profile "web" repo #1: dir: file name "/etc" is absolute`},
	{"unknown repo key", run("    web:", "      repos:", "        - {url: 'https://h/x', branch: main}"), 5, 32, `unknown key "branch" in profile "web" repo #1 (known: url, ref, dir, files, ssh_key, known_hosts, username, password, age_identity, mode, uid, gid)`},
	{"second repo", run("    web:", "      repos:", "        - {url: 'https://h/x'}", "        - {url: 'ftp://h/x'}"), 6, 17, `profile "web" repo #2: url scheme "ftp"`},

	// A repo's files.
	{"repo files empty", run("    web:", "      repos:", "        - {url: 'https://h/x', files: []}"), 5, 39, `profile "web" repo #1: files: empty list; list the files to copy, or leave files out to copy every file`},
	{"repo files a mapping", run("    web:", "      repos:", "        - {url: 'https://h/x', files: {a: b}}"), 5, 39, "files: want a list of paths in the repository"},
	{"repo file absolute", run("    web:", "      repos:", "        - {url: 'https://h/x', files: [/etc/x]}"), 5, 40, `profile "web" repo #1 file #1: src: file name "/etc/x" is absolute`},
	{"repo file dotdot", run("    web:", "      repos:", "        - {url: 'https://h/x', files: [a, ../x]}"), 5, 43, `repo #1 file #2: src: file name "../x" is not a clean relative path`},
	{"repo file dot", run("    web:", "      repos:", "        - {url: 'https://h/x', files: [./]}"), 5, 40, `file name "." is not a clean relative path`},
	{"repo file slash", run("    web:", "      repos:", "        - {url: 'https://h/x', files: [/]}"), 5, 40, "empty file name"},
	{"repo file without src", run("    web:", "      repos:", "        - {url: 'https://h/x', files: [{dest: a}]}"), 5, 40, `profile "web" repo #1 file #1 has no src; give src: <path in the repository>`},
	{"repo dir into a file", run("    web:", "      repos:", "        - {url: 'https://h/x', files: [{src: tftp/, dest: tftp}]}"), 5, 59, `src "tftp/" is a directory (it ends in '/'), so dest must end in '/' too: "tftp/"`},
	{"repo file into a dir", run("    web:", "      repos:", "        - {url: 'https://h/x', files: [{src: a/hosts, dest: etc/}]}"), 5, 61, `src "a/hosts" is a file, so dest names a file and must not end in '/'; write the file's path, like "etc/hosts"`},
	{"repo file bad dest", run("    web:", "      repos:", "        - {url: 'https://h/x', files: [{src: a, dest: ../a}]}"), 5, 55, `repo #1 file #1: dest: file name "../a"`},
	{"repo file mode", run("    web:", "      repos:", "        - {url: 'https://h/x', files: [{src: a, mode: 644}]}"), 5, 55, `repo #1 file #1: mode: got the number 644; YAML does not read modes as octal, so quote it: mode: "0644"`},
	{"repo file uid", run("    web:", "      repos:", "        - {url: 'https://h/x', files: [{src: a, uid: 1}]}"), 5, 49, `unknown key "uid" in profile "web" repo #1 file #1 (known: src, dest, mode)`},
	{"repo file a list", run("    web:", "      repos:", "        - {url: 'https://h/x', files: [[a]]}"), 5, 40, "repo #1 file #1: want a path in the repository or a mapping with src"},

	// on_rotate and post.
	{"unknown signal", run("    web: {host_private: true, on_rotate: SIGFOO}"), 3, 42, `profile "web": on_rotate: unknown signal "SIGFOO"; use one of SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM, SIGCONT`},
	{"lowercase signal", run("    web: {host_private: true, on_rotate: sighup}"), 3, 42, `unknown signal "sighup"; write it in capitals: SIGHUP; use one of`},
	{"SIGKILL", run("    web: {host_private: true, on_rotate: KILL}"), 3, 42, `unknown signal "KILL"`},
	{"signal number", run("    web: {host_private: true, on_rotate: 1}"), 3, 42, "on_rotate: want a string, got a number; put it in quotes"},
	{"post a string", run("    web: {host_private: true, post: nginx -t}"), 3, 37, `profile "web": post: want a command as a list of strings, like ["/bin/sh", "-c", "nginx -t"], got a string`},
	{"post empty", run("    web: {host_private: true, post: []}"), 3, 37, "post: empty list; give the program and its arguments, or leave post out"},
	{"post empty program", run("    web: {host_private: true, post: ['', x]}"), 3, 38, "post: the program (the first item) is empty"},
	{"post a number", run("    web: {host_private: true, post: [/bin/true, 1]}"), 3, 49, "post: want a string, got a number; put it in quotes"},
	{"post with NUL", run(`    web: {host_private: true, post: [/bin/echo, "a\0b"]}`), 3, 49, "post: item 2 contains a NUL character"},

	// Two entries, one place.
	{
		"file given by a repo too",
		run("    web:", "      files: {etc/hosts: x}", "      repos:", "        - {url: 'https://h/x', dir: etc, files: [hosts]}"),
		6, 50, `profile "web": the entries on lines 4 and 6 both write the file "etc/hosts"; give each its own name`,
	},
	{
		"two repo files, one dest",
		run("    web:", "      repos:", "        - url: 'https://h/x'", "          files:", "            - a", "            - {src: b, dest: a}"),
		8, 30, `the entries on lines 7 and 8 both write the file "a"`,
	},
	{
		"two repos, one file",
		run("    web:", "      repos:", "        - {url: 'https://h/x', files: [a/b]}", "        - {url: 'https://h/y', dir: a, files: [b]}"),
		6, 48, `the entries on lines 5 and 6 both write the file "a/b"`,
	},
	{
		"file where a prefix puts a directory",
		run("    web:", "      prefixes: [{prefix: a/, dir: certs}]", "      files: {certs: x}"),
		5, 15, `profile "web": "certs" is a file on line 5 but "certs" on line 4 needs it to be a directory; rename one`,
	},
	{
		"file where another file needs a directory",
		run("    web:", "      files:", "        tls/key.pem/x: a", "        tls/key.pem: b"),
		6, 9, `"tls/key.pem" is a file on line 6 but "tls/key.pem/x" on line 5 needs it to be a directory`,
	},
	{
		"file where a repo puts a directory",
		run("    web:", "      files: {etc: x}", "      repos: [{url: 'https://h/x', dir: etc}]"),
		5, 41, `"etc" is a file on line 4 but "etc" on line 5 needs it to be a directory`,
	},
	{
		"file where a repo copies a directory",
		run("    web:", "      files: {etc/tftp: x}", "      repos: [{url: 'https://h/x', dir: etc, files: [tftp/]}]"),
		5, 54, `"etc/tftp" is a file on line 4 but "etc/tftp" on line 5 needs it to be a directory`,
	},
}

func TestParseRunErrors(t *testing.T) {
	for _, tt := range runErrorTests {
		t.Run(tt.name, func(t *testing.T) { checkError(t, tt.in, tt.line, tt.col, tt.msg) })
	}
}

func TestURLPasswordNotInMessage(t *testing.T) {
	for _, url := range []string{"https://u:hunter2@h/x", "u:hunter2@h:x", "ftp://u:hunter2@h/x", "https://u:hunter2@/x", "https://u:hunter2@h/%zz"} {
		_, err := manifest.Parse("privy.yaml", []byte(run("    web:", "      repos:", "        - {url: '"+url+"'}")))
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("url %s: got %v, want an error without the password", url, err)
		}
	}
}

// runAgreementTests are run: sections that the schema and the parser must
// both accept (ok) or both reject.
var runAgreementTests = []struct {
	name string
	in   string
	ok   bool
}{
	{"run example", example, true},
	{"empty run", y("run: {}"), true},
	{"null profiles", y("run:", "  profiles:"), true},
	{"host_private only", run("    web: {host_private: true}"), true},
	{"short forms", run("    web: {files: {a: x}, prefixes: [x/]}"), true},
	{"modes", run(`    web: {mode: "440", files: {a: {secret: x, mode: "0777"}, b: {secret: x, mode: "7"}}}`), true},
	{"ids", run("    web: {uid: 0, gid: 2147483647, files: {a: {secret: x, uid: 1000}}}"), true},
	{"signals", run("    web: {host_private: true, on_rotate: USR2}"), true},
	{"scp URLs", run("    web: {repos: [{url: 'git@h.example:x', known_hosts: k}, {url: 'git@[::1]:x', known_hosts: k}]}"), true},
	{"http URL", run("    web: {repos: [{url: 'http://localhost:3000/x.git'}]}"), true},
	{"repo file directory", run("    web: {repos: [{url: 'https://h/x', files: [a/, {src: b/, dest: c/}, {src: d, dest: e/f}]}]}"), true},
	{"odd file names", run("    web: {files: {...: x, '.a/..b/c d': x, 'é': x}}"), true},
	{"post", run(`    web: {host_private: true, post: ["/bin/sh", "-c", ""]}`), true},

	{"unknown run key", y("run:", "  profile: {}"), false},
	{"profiles a list", y("run:", "  profiles: [web]"), false},
	{"uppercase profile name", run("    Web: {host_private: true}"), false},
	{"profile name too long", run("    " + strings.Repeat("a", 64) + ": {host_private: true}"), false},
	{"null profile", run("    web:"), false},
	{"profile delivers nothing", run("    web: {files: {}, prefixes: [], repos: [], host_private: false}"), false},
	{"unknown profile key", run("    web: {host_private: true, env: {}}"), false},
	{"host_private a string", run("    web: {host_private: 'true'}"), false},
	{"absolute file name", run("    web: {files: {/a: x}}"), false},
	{"file name ..", run("    web: {files: {a/../b: x}}"), false},
	{"file name with a trailing slash", run("    web: {files: {a/: x}}"), false},
	{"privy's own file name", run("    web: {files: {.privy-tmp-a: x}}"), false},
	{"bad secret", run("    web: {files: {a: X}}"), false},
	{"file without secret", run(`    web: {files: {a: {mode: "0400"}}}`), false},
	{"unknown file key", run("    web: {files: {a: {secret: x, user: root}}}"), false},
	{"mode a number", run("    web: {files: {a: {secret: x, mode: 400}}}"), false},
	{"mode YAML octal", run("    web: {files: {a: {secret: x, mode: 0o400}}}"), false},
	{"mode setuid", run(`    web: {files: {a: {secret: x, mode: "4755"}}}`), false},
	{"mode zero", run(`    web: {files: {a: {secret: x, mode: "000"}}}`), false},
	{"mode not octal", run(`    web: {mode: "0900", host_private: true}`), false},
	{"uid negative", run("    web: {uid: -1, host_private: true}"), false},
	{"uid too big", run("    web: {uid: 2147483648, host_private: true}"), false},
	{"gid a string", run("    web: {gid: '0', host_private: true}"), false},
	{"prefix without a slash", run("    web: {prefixes: [x]}"), false},
	{"bad prefix", run("    web: {prefixes: [{prefix: X/}]}"), false},
	{"prefix missing", run("    web: {prefixes: [{dir: a}]}"), false},
	{"prefix dir absolute", run("    web: {prefixes: [{prefix: x/, dir: /a}]}"), false},
	{"repo without url", run("    web: {repos: [{ref: main}]}"), false},
	{"file URL", run("    web: {repos: [{url: 'file:///x'}]}"), false},
	{"local path", run("    web: {repos: [{url: /srv/x.git}]}"), false},
	{"URL with a password", run("    web: {repos: [{url: 'https://u:p@h/x'}]}"), false},
	{"URL with a space", run("    web: {repos: [{url: 'https://h/a b'}]}"), false},
	{"ssh without known_hosts", run("    web: {repos: [{url: 'ssh://h/x', ssh_key: k}]}"), false},
	{"scp without known_hosts", run("    web: {repos: [{url: 'git@h:x'}]}"), false},
	{"ssh with a username", run("    web: {repos: [{url: 'git@h:x', known_hosts: k, username: u}]}"), false},
	{"https with an ssh key", run("    web: {repos: [{url: 'https://h/x', ssh_key: k}]}"), false},
	{"ref an option", run("    web: {repos: [{url: 'https://h/x', ref: -x}]}"), false},
	{"ref empty", run("    web: {repos: [{url: 'https://h/x', ref: ''}]}"), false},
	{"username with a colon", run("    web: {repos: [{url: 'https://h/x', username: 'a:b'}]}"), false},
	{"repo files empty", run("    web: {repos: [{url: 'https://h/x', files: []}]}"), false},
	{"repo file dotdot", run("    web: {repos: [{url: 'https://h/x', files: [../a]}]}"), false},
	{"repo dir into a file", run("    web: {repos: [{url: 'https://h/x', files: [{src: a/, dest: b}]}]}"), false},
	{"repo file into a dir", run("    web: {repos: [{url: 'https://h/x', files: [{src: a, dest: b/}]}]}"), false},
	{"repo file without src", run("    web: {repos: [{url: 'https://h/x', files: [{dest: b}]}]}"), false},
	{"lowercase signal", run("    web: {host_private: true, on_rotate: hup}"), false},
	{"unknown signal", run("    web: {host_private: true, on_rotate: SIGKILL}"), false},
	{"post a string", run("    web: {host_private: true, post: /bin/true}"), false},
	{"post empty", run("    web: {host_private: true, post: []}"), false},
	{"post empty program", run("    web: {host_private: true, post: ['']}"), false},
	{"post a number", run("    web: {host_private: true, post: [/bin/x, 1]}"), false},
}

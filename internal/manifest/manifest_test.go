package manifest_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/privyhq/privy/internal/manifest"
	"github.com/privyhq/privy/internal/store"
)

// y joins lines into a manifest, so that a test's line numbers can be read
// off its source.
func y(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

var parseTests = []struct {
	name string
	path string // the manifest's name; /proj/privy.yaml if empty
	in   string
	want manifest.Build
}{
	{name: "empty", in: ""},
	{name: "comments only", in: y("# nothing yet")},
	{name: "null document", in: y("~")},
	{name: "version only", in: y("version: 1")},
	{name: "empty sections", in: y("build:", "run:")},
	{
		name: "null secrets and ssh",
		in:   y("build:", "  secrets:", "  ssh:"),
	},
	{
		name: "shorthand",
		in:   y("build:", "  secrets:", "    npm-token: app/npm-token"),
		want: manifest.Build{Secrets: map[string]manifest.Source{
			"npm-token": {Store: "app/npm-token", Line: 3},
		}},
	},
	{
		name: "every source",
		in: y(
			"version: 1",
			"build:",
			"  secrets:",
			"    npm-token: app/npm-token",
			"    db:",
			"      store: app/db",
			"    mycorp-ca:",
			"      file: certs/mycorp-ca.pem",
			"    pypi: {env: PYPI_TOKEN}",
		),
		want: manifest.Build{Secrets: map[string]manifest.Source{
			"npm-token": {Store: "app/npm-token", Line: 4},
			"db":        {Store: "app/db", Line: 5},
			"mycorp-ca": {File: "/proj/certs/mycorp-ca.pem", Line: 7},
			"pypi":      {Env: "PYPI_TOKEN", Line: 9},
		}},
	},
	{
		name: "file in a parent directory",
		path: "/proj/sub/privy.yaml",
		in:   y("build:", "  secrets:", "    ca: {file: ../ca.pem}"),
		want: manifest.Build{Secrets: map[string]manifest.Source{"ca": {File: "/proj/ca.pem", Line: 3}}},
	},
	{
		name: "absolute file",
		in:   y("build:", "  secrets:", "    ca: {file: /etc/ssl/ca.pem}"),
		want: manifest.Build{Secrets: map[string]manifest.Source{"ca": {File: "/etc/ssl/ca.pem", Line: 3}}},
	},
	{
		name: "tilde is not expanded",
		in:   y("build:", "  secrets:", "    npmrc: {file: ~/.npmrc}"),
		want: manifest.Build{Secrets: map[string]manifest.Source{"npmrc": {File: "/proj/~/.npmrc", Line: 3}}},
	},
	{
		name: "ssh scalar and list",
		in: y(
			"build:",
			"  ssh:",
			"    default: git/deploy-key",
			"    github: [git/gh-key-1, git/gh-key-2]",
			"    gitlab:",
			"      - git/gl-key",
		),
		want: manifest.Build{SSH: map[string][]manifest.SSHKey{
			"default": {{Store: "git/deploy-key", Line: 3}},
			"github":  {{Store: "git/gh-key-1", Line: 4}, {Store: "git/gh-key-2", Line: 4}},
			"gitlab":  {{Store: "git/gl-key", Line: 6}},
		}},
	},
	{
		name: "odd but valid ids and paths",
		in: y(
			"build:",
			"  secrets:",
			"    My.Secret_1: a/.b/..c/...",
			"    'ünïcode': x",
			"  ssh:",
			"    '123': k",
		),
		want: manifest.Build{
			Secrets: map[string]manifest.Source{
				"My.Secret_1": {Store: "a/.b/..c/...", Line: 3},
				"ünïcode":     {Store: "x", Line: 4},
			},
			SSH: map[string][]manifest.SSHKey{"123": {{Store: "k", Line: 6}}},
		},
	},
	{
		name: "anchors and aliases",
		in: y(
			"build:",
			"  secrets:",
			"    a: &db {store: app/db}",
			"    b: *db",
		),
		want: manifest.Build{Secrets: map[string]manifest.Source{
			"a": {Store: "app/db", Line: 3},
			"b": {Store: "app/db", Line: 4},
		}},
	},
	{
		name: "version written in hex",
		in:   y("version: 0x1"),
	},
}

func TestParse(t *testing.T) {
	for _, tt := range parseTests {
		t.Run(tt.name, func(t *testing.T) {
			name := tt.path
			if name == "" {
				name = "/proj/privy.yaml"
			}
			f, err := manifest.Parse(name, []byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if f.Path != name {
				t.Errorf("got Path %q, want %q", f.Path, name)
			}
			if !reflect.DeepEqual(nonNil(f.Build), nonNil(tt.want)) {
				t.Errorf("got Build\n\t%+v\nwant\n\t%+v", f.Build, tt.want)
			}
		})
	}
}

// nonNil makes an absent section and an empty one compare equal.
func nonNil(b manifest.Build) manifest.Build {
	if b.Secrets == nil {
		b.Secrets = map[string]manifest.Source{}
	}
	if b.SSH == nil {
		b.SSH = map[string][]manifest.SSHKey{}
	}
	return b
}

func TestParseRelativeName(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	f, err := manifest.Parse("app/privy.yaml", []byte(y("build:", "  secrets:", "    ca: {file: certs/ca.pem}")))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got, want := f.Build.Secrets["ca"].File, filepath.Join(wd, "app/certs/ca.pem"); got != want {
		t.Errorf("got file %q, want %q", got, want)
	}
}

func TestSourceString(t *testing.T) {
	for _, tt := range []struct {
		src  manifest.Source
		want string
	}{
		{manifest.Source{Store: "app/db"}, "store app/db"},
		{manifest.Source{File: "/abs/path"}, "file /abs/path"},
		{manifest.Source{Env: "PYPI_TOKEN"}, "env PYPI_TOKEN"},
		{manifest.Source{}, "no source"},
	} {
		if got := tt.src.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.src, got, tt.want)
		}
	}
}

var errorTests = []struct {
	name      string
	in        string
	line, col int    // col 0: not checked
	msg       string // a part of the message
}{
	// YAML itself.
	{"unclosed list", y("build:", "  secrets: [", "version: 1"), 3, 0, "invalid YAML: did not find expected ',' or ']'"},
	{"bad indentation", y("build:", "  secrets:", "    a: b", "   c: d"), 4, 0, "invalid YAML: did not find expected key"},
	{"unclosed quote", y("build:", "  secrets:", "    a: 'b", "    c: d"), 3, 0, "invalid YAML: found unexpected end of stream"},
	{"colon in a value", y("build:", "  secrets:", "    a: b: c"), 3, 0, "invalid YAML: mapping values are not allowed in this context"},
	{"unknown anchor", y("build:", "  secrets:", "    a: *b"), 3, 0, "invalid YAML: unknown anchor 'b' referenced"},
	{"second document broken", y("version: 1", "---", "build: ["), 3, 0, "invalid YAML: "},
	{"tab indentation", y("build:", "\tsecrets: {}"), 2, 0, "indent with spaces"},
	{"control character", y("build:", "  secrets:", "    a: b\x01"), 3, 0, "control characters"},
	{"two documents", y("version: 1", "---", "build: {}"), 2, 1, "found a second YAML document; a manifest holds one"},
	{"merge key", y("build:", "  secrets:", "    a:", "      <<: {store: x}"), 4, 7, "merge keys (<<) are not supported"},
	{"list as key", y("build:", "  ? [a]", "  : b"), 2, 5, "want a name as key in build, got a list"},

	// Kinds and keys.
	{"list at the top", y("- build"), 1, 1, "want a mapping with version, build and run at the top, got a list"},
	{"string at the top", y("hello"), 1, 1, "got a string"},
	{"unknown top key", y("version: 1", "biuld: {}"), 2, 1, `unknown key "biuld" at the top (known: version, build, run)`},
	{"unknown build key", y("build:", "  secret: {}"), 2, 3, `unknown key "secret" in build (known: secrets, ssh)`},
	{"build is a list", y("build: [a]"), 1, 8, "build: want a mapping with secrets and ssh, got a list"},
	{"secrets is a list", y("build:", "  secrets: [a]"), 2, 12, "build.secrets: want a mapping"},
	{"ssh is a string", y("build:", "  ssh: key"), 2, 8, "build.ssh: want a mapping"},
	{"run is a list", y("run: [a]"), 1, 6, "run: want a mapping with profiles, got a list"},
	{"duplicate top key", y("build: {}", "version: 1", "build: {}"), 3, 1, `key "build" given twice at the top (first on line 1); remove one`},
	{"duplicate secret id", y("build:", "  secrets:", "    a: x", "    a: y"), 4, 5, `key "a" given twice in build.secrets (first on line 3)`},
	{"duplicate ssh id", y("build:", "  ssh:", "    default: x", "    default: y"), 4, 5, `key "default" given twice in build.ssh (first on line 3)`},
	{"duplicate source key", y("build:", "  secrets:", "    a:", "      store: x", "      store: y"), 5, 7, `key "store" given twice in secret "a" (first on line 4)`},

	// version.
	{"version 2", y("version: 2"), 1, 10, `unsupported version "2"; this privy reads version 1, so write version: 1`},
	{"version as a string", y(`version: "1"`), 1, 10, "version: want the number 1, got a string"},
	{"version empty", y("version:"), 1, 9, "version: want the number 1, got nothing"},
	{"version list", y("version: [1]"), 1, 10, "got a list"},

	// Sources.
	{"source empty mapping", y("build:", "  secrets:", "    a: {}"), 3, 8, `secret "a" has no source; give one of store: <path>, file: <path>, env: <NAME>`},
	{"source null", y("build:", "  secrets:", "    a:"), 3, 7, `secret "a" has no source; write a store path, or a mapping with one of store, file, env`},
	{"source list", y("build:", "  secrets:", "    a: [x]"), 3, 8, `secret "a": want a store path, or a mapping with one of store, file, env, got a list`},
	{"two sources", y("build:", "  secrets:", "    a:", "      store: x", "      env: X"), 5, 7, `secret "a" has both store and env; keep only one of store, file, env`},
	{"unknown source key", y("build:", "  secrets:", "    a:", "      path: x"), 4, 7, `unknown key "path" in secret "a" (known: store, file, env)`},
	{"bad shorthand path", y("build:", "  secrets:", "    a: App/db"), 3, 8, `secret "a": invalid store path "App/db": segment "App" has a character outside [a-z0-9._-]`},
	{"bad store path", y("build:", "  secrets:", "    a: {store: /app/db}"), 3, 16, `secret "a": invalid store path "/app/db": path starts with '/'`},
	{"empty store path", y("build:", "  secrets:", "    a: ''"), 3, 8, "path is empty"},
	{"dot segment", y("build:", "  secrets:", "    a: app/../db"), 3, 8, `segment ".." is not allowed`},
	{"long store path", y("build:", "  secrets:", "    a: "+strings.Repeat("a", store.MaxPathLen+1)), 3, 8, "the limit is 256 bytes"},
	{"store path a number", y("build:", "  secrets:", "    a: 2024"), 3, 8, `secret "a": store path: want a string, got a number; put it in quotes`},
	{"store path a tagged number", y("build:", "  secrets:", "    a: !!int 7"), 3, 8, "got a number; remove the tag !!int"},
	{"store path a boolean", y("build:", "  secrets:", "    a: {store: true}"), 3, 16, "got a boolean; put it in quotes"},
	{"store path tagged", y("build:", "  secrets:", "    a: !!binary YWJj"), 3, 8, "got a value tagged !!binary; remove the tag !!binary"},
	{"env with a dash", y("build:", "  secrets:", "    a: {env: PYPI-TOKEN}"), 3, 14, `secret "a": env "PYPI-TOKEN" is not an environment variable name`},
	{"env with a leading digit", y("build:", "  secrets:", "    a: {env: 1X}"), 3, 14, `env "1X" is not`},
	{"env empty", y("build:", "  secrets:", "    a: {env: ''}"), 3, 14, `env "" is not`},
	{"env null", y("build:", "  secrets:", "    a: {env: }"), 3, 14, "env: want a string, got nothing; write a value"},
	{"file empty", y("build:", "  secrets:", "    a: {file: ''}"), 3, 15, `secret "a": file is empty; write a path, absolute or relative to the directory of privy.yaml`},
	{"file with NUL", y("build:", "  secrets:", `    a: {file: "x\0y"}`), 3, 15, "file path contains a NUL character"},
	{"file a list", y("build:", "  secrets:", "    a: {file: [x]}"), 3, 15, "file: want a string, got a list"},

	// Ids.
	{"empty secret id", y("build:", "  secrets:", "    '': x"), 3, 5, "empty secret id; write the id the Dockerfile uses in --mount=type=secret,id=…"},
	{"secret id with a comma", y("build:", "  secrets:", "    a,b: x"), 3, 5, `secret id "a,b" contains ','`},
	{"secret id with =", y("build:", "  secrets:", "    a=b: x"), 3, 5, `secret id "a=b" contains '='`},
	{"secret id with a quote", y("build:", "  secrets:", `    'a"b': x`), 3, 5, `secret id "a\"b" contains '"'`},
	{"secret id with a space", y("build:", "  secrets:", "    a b: x"), 3, 5, "contains whitespace or a control character (U+0020)"},
	{"secret id with a tab", y("build:", "  secrets:", `    "a\tb": x`), 3, 5, "(U+0009)"},
	{"secret id with a no-break space", y("build:", "  secrets:", `    "a\u00a0b": x`), 3, 5, "(U+00A0)"},
	{"secret id with a control character", y("build:", "  secrets:", `    "a\x7fb": x`), 3, 5, "(U+007F)"},
	{"empty ssh id", y("build:", "  ssh:", "    '': x"), 3, 5, "empty ssh id; write the id the Dockerfile uses in --mount=type=ssh,id=…"},
	{"ssh id with a comma", y("build:", "  ssh:", "    a,b: x"), 3, 5, `ssh id "a,b" contains ','`},

	// ssh keys.
	{"ssh empty list", y("build:", "  ssh:", "    default: []"), 3, 14, `ssh "default": empty list; name at least one store path of an OpenSSH private key`},
	{"ssh null", y("build:", "  ssh:", "    default:"), 3, 13, `ssh "default" has no key`},
	{"ssh mapping", y("build:", "  ssh:", "    default: {store: x}"), 3, 14, `ssh "default": want a store path or a list of them, got a mapping`},
	{"ssh bad path", y("build:", "  ssh:", "    default: Git/key"), 3, 14, `ssh "default": invalid store path "Git/key"`},
	{"ssh bad path in a list", y("build:", "  ssh:", "    github:", "      - git/ok", "      - git//key"), 5, 9, `ssh "github": invalid store path "git//key": path has an empty segment`},
	{"ssh list of lists", y("build:", "  ssh:", "    github: [[a]]"), 3, 14, `ssh "github": store path: want a string, got a list`},
}

func TestParseErrors(t *testing.T) {
	for _, tt := range errorTests {
		t.Run(tt.name, func(t *testing.T) { checkError(t, tt.in, tt.line, tt.col, tt.msg) })
	}
}

// checkError checks that Parse fails on in at line:col (col 0: any) with a
// message that contains msg.
func checkError(t *testing.T, in string, line, col int, msg string) {
	t.Helper()
	f, err := manifest.Parse("privy.yaml", []byte(in))
	if err == nil {
		t.Fatalf("Parse succeeded with %+v; want an error at line %d", f, line)
	}
	var me *manifest.Error
	if !errors.As(err, &me) {
		t.Fatalf("got %T %v, want a *manifest.Error", err, err)
	}
	if me.File != "privy.yaml" || me.Line != line || col != 0 && me.Col != col {
		t.Errorf("got %v at %s:%d:%d, want privy.yaml:%d:%d", err, me.File, me.Line, me.Col, line, col)
	}
	if !strings.Contains(me.Msg, msg) {
		t.Errorf("got message %q, want it to contain %q", me.Msg, msg)
	}
}

func TestErrorString(t *testing.T) {
	_, err := manifest.Parse("privy.yaml", []byte(y("build:", "  secret: {}")))
	if got, want := fmt.Sprint(err), `privy.yaml:2:3: unknown key "secret" in build (known: secrets, ssh)`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, tt := range []struct {
		err  manifest.Error
		want string
	}{
		{manifest.Error{File: "a/privy.yaml", Line: 3, Col: 7, Msg: "m"}, "a/privy.yaml:3:7: m"},
		{manifest.Error{File: "a/privy.yaml", Line: 3, Msg: "m"}, "a/privy.yaml:3: m"},
		{manifest.Error{File: "a/privy.yaml", Msg: "m"}, "a/privy.yaml: m"},
	} {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestStorePathErrorUnwraps(t *testing.T) {
	_, err := manifest.Parse("privy.yaml", []byte(y("build:", "  secrets:", "    a: App/db")))
	var pe *store.PathError
	if !errors.Is(err, store.ErrInvalidPath) || !errors.As(err, &pe) || pe.Path != "App/db" {
		t.Errorf("got %v, want it to wrap a *store.PathError for App/db", err)
	}
}

func TestLongKeyIsClipped(t *testing.T) {
	key := strings.Repeat("é", 1000)
	_, err := manifest.Parse("privy.yaml", []byte(y("build:", "  secrets:", "    "+key+": {path: x}")))
	if err == nil || len(err.Error()) > 300 || !utf8.ValidString(err.Error()) {
		t.Errorf("got %q, want an error of valid UTF-8 with the key clipped", err)
	}
}

func TestSizeLimit(t *testing.T) {
	const limit = 1 << 20
	fits := []byte(y("build:", "  secrets:", "    a: x"))
	fits = append(fits, strings.Repeat("#", limit-len(fits))...)
	if _, err := manifest.Parse("privy.yaml", fits); err != nil {
		t.Errorf("Parse of a manifest of exactly 1 MiB: %v", err)
	}
	_, err := manifest.Parse("privy.yaml", append(fits, '\n'))
	var me *manifest.Error
	if !errors.As(err, &me) || !strings.Contains(me.Msg, "larger than 1 MiB") {
		t.Errorf("got %v for a manifest over 1 MiB, want a *manifest.Error saying it is larger than 1 MiB", err)
	}

	path := filepath.Join(t.TempDir(), "privy.yaml")
	if err := os.WriteFile(path, append(fits, strings.Repeat("#", limit)...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := manifest.Load(path); !errors.As(err, &me) || me.File != path {
		t.Errorf("got %v from Load of a 2 MiB file, want a *manifest.Error naming %s", err, path)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "privy.yaml")
	in := y("build:", "  secrets:", "    ca: {file: ca.pem}", "    db: app/db")
	if err := os.WriteFile(path, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := manifest.Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := map[string]manifest.Source{
		"ca": {File: filepath.Join(dir, "ca.pem"), Line: 3},
		"db": {Store: "app/db", Line: 4},
	}
	if f.Path != path || !reflect.DeepEqual(f.Build.Secrets, want) {
		t.Errorf("got %q %+v, want %q %+v", f.Path, f.Build.Secrets, path, want)
	}

	_, err = manifest.Load(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v for a missing file, want an error wrapping fs.ErrNotExist", err)
	}
	_, err = manifest.Load(dir)
	if err == nil {
		t.Errorf("Load of a directory succeeded, want an error")
	}
}

// agreementTests are manifests that the schema and the parser must both
// accept (ok) or both reject.
var agreementTests = []struct {
	name string
	in   string
	ok   bool
}{
	{"empty", "", true},
	{"full", y(
		"version: 1",
		"build:",
		"  secrets:",
		"    npm-token: app/npm-token",
		"    db: {store: app/db}",
		"    mycorp-ca: {file: certs/mycorp-ca.pem}",
		"    pypi: {env: PYPI_TOKEN}",
		"  ssh:",
		"    default: git/deploy-key",
		"    github: [git/gh-key-1, git/gh-key-2]",
		"run:",
		"  profiles:",
		"    web: {files: {db_password: app/web/db-password}}",
	), true},
	{"null sections", y("build:", "  secrets:", "  ssh:", "run:"), true},
	{"odd paths", y("build:", "  secrets:", "    a: .a/..b/.../a.b_c-d", "    b: "+strings.Repeat("a", 256)), true},
	{"unicode id", y("build:", "  secrets:", "    'ünï.code': x"), true},

	{"unknown top key", y("biuld: {}"), false},
	{"unknown build key", y("build:", "  secret: {}"), false},
	{"unknown source key", y("build:", "  secrets:", "    a: {path: x}"), false},
	{"top is a list", y("- a"), false},
	{"build is a list", y("build: [a]"), false},
	{"run is a string", y("run: web"), false},
	{"version 2", y("version: 2"), false},
	{"version string", y(`version: "1"`), false},
	{"no source", y("build:", "  secrets:", "    a: {}"), false},
	{"null source", y("build:", "  secrets:", "    a:"), false},
	{"two sources", y("build:", "  secrets:", "    a: {store: x, env: X}"), false},
	{"store path uppercase", y("build:", "  secrets:", "    a: App/db"), false},
	{"store path leading slash", y("build:", "  secrets:", "    a: {store: /a}"), false},
	{"store path trailing slash", y("build:", "  secrets:", "    a: a/"), false},
	{"store path empty segment", y("build:", "  secrets:", "    a: a//b"), false},
	{"store path dot", y("build:", "  secrets:", "    a: a/./b"), false},
	{"store path dot dot", y("build:", "  secrets:", "    a: .."), false},
	{"store path empty", y("build:", "  secrets:", "    a: ''"), false},
	{"store path too long", y("build:", "  secrets:", "    a: "+strings.Repeat("a", 257)), false},
	{"store path a number", y("build:", "  secrets:", "    a: 2024"), false},
	{"bad env", y("build:", "  secrets:", "    a: {env: 9LIVES}"), false},
	{"empty file", y("build:", "  secrets:", "    a: {file: ''}"), false},
	{"empty id", y("build:", "  secrets:", "    '': x"), false},
	{"id with a comma", y("build:", "  secrets:", "    a,b: x"), false},
	{"id with =", y("build:", "  ssh:", "    a=b: x"), false},
	{"id with a quote", y("build:", "  secrets:", `    'a"b': x`), false},
	{"id with a space", y("build:", "  secrets:", "    a b: x"), false},
	{"id with an ideographic space", y("build:", "  ssh:", `    "a\u3000b": x`), false},
	{"ssh empty list", y("build:", "  ssh:", "    default: []"), false},
	{"ssh bad path in a list", y("build:", "  ssh:", "    default: [a, B]"), false},
	{"ssh mapping", y("build:", "  ssh:", "    default: {store: a}"), false},
}

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	sch, err := jsonschema.NewCompiler().Compile("../../docs/privy.schema.json")
	if err != nil {
		t.Fatalf("compiling docs/privy.schema.json: %v", err)
	}
	return sch
}

// asJSON decodes a YAML manifest the way an editor's YAML language server
// does before it checks it against the schema.
func asJSON(t *testing.T, in string) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(in), &v); err != nil {
		t.Fatalf("decoding YAML: %v", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encoding JSON: %v", err)
	}
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("decoding JSON: %v", err)
	}
	return inst
}

func TestSchemaAgrees(t *testing.T) {
	sch := compileSchema(t)
	for _, tt := range slices.Concat(agreementTests, runAgreementTests) {
		t.Run(tt.name, func(t *testing.T) {
			_, perr := manifest.Parse("privy.yaml", []byte(tt.in))
			serr := sch.Validate(asJSON(t, tt.in))
			if got := perr == nil; got != tt.ok {
				t.Errorf("parser: got ok=%v (%v), want ok=%v", got, perr, tt.ok)
			}
			if got := serr == nil; got != tt.ok {
				t.Errorf("schema: got ok=%v (%v), want ok=%v", got, serr, tt.ok)
			}
		})
	}
}

// TestSchemaIDPattern checks the schema's character class for ids against
// the parser for every rune up to U+3100 (past the last whitespace rune)
// and a few beyond.
func TestSchemaIDPattern(t *testing.T) {
	raw, err := os.ReadFile("../../docs/privy.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Defs map[string]struct{ Pattern string } `json:"$defs"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(schema.Defs["id"].Pattern)
	runes := []rune{0xfeff, 0xfffd, 0x1f600, 0x10ffff}
	for r := rune(0); r < 0x3100; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		runes = append(runes, r)
	}
	for _, r := range runes {
		id := "a" + string(r)
		in := fmt.Sprintf("build:\n  secrets:\n    \"a\\U%08X\": x\n", r)
		_, err := manifest.Parse("privy.yaml", []byte(in))
		if err != nil && !strings.Contains(err.Error(), "secret id") {
			t.Fatalf("Parse of id %q: %v", id, err)
		}
		if parser, schema := err == nil, re.MatchString(id); parser != schema {
			t.Errorf("id %q (%U): parser accepts it: %v, schema: %v", id, r, parser, schema)
		}
	}
}

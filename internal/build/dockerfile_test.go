package build

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// dfLines joins lines into a Dockerfile, so that line numbers can be read off
// a test's source.
func dfLines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }

func mountsString(ms []Mount) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "\n    %+v", m)
	}
	return b.String()
}

var parseDockerfileTests = []struct {
	name       string
	dockerfile string
	secrets    []Mount
	ssh        []Mount
}{
	{
		name:       "no mounts",
		dockerfile: dfLines("FROM alpine", "RUN echo hi"),
	},
	{
		name: "multi-stage, order of first use, required on any use",
		dockerfile: dfLines(
			"FROM alpine AS deps",                                                     // 1
			"RUN --mount=type=secret,id=npm echo",                                     // 2
			"RUN --mount=type=secret,id=pip,required=true echo",                       // 3
			"FROM deps AS build",                                                      // 4
			"RUN --mount=type=secret,id=git --mount=type=secret,id=npm,required echo", // 5
			"RUN --mount=type=secret,id=pip echo",                                     // 6
			"FROM scratch",                                                            // 7
			"COPY --from=build /a /a",                                                 // 8
			"RUN --mount=type=secret,id=last,required=false echo",                     // 9
		),
		secrets: []Mount{
			{ID: "npm", Required: true, Target: "/run/secrets/npm", Stage: "deps", Line: 2},
			{ID: "pip", Required: true, Target: "/run/secrets/pip", Stage: "deps", Line: 3},
			{ID: "git", Target: "/run/secrets/git", Stage: "build", Line: 5},
			{ID: "last", Target: "/run/secrets/last", Stage: "2", Line: 9},
		},
	},
	{
		name:       "id from the target",
		dockerfile: dfLines("FROM alpine", "RUN --mount=type=secret,target=/root/.npmrc npm ci"),
		secrets:    []Mount{{ID: ".npmrc", Target: "/root/.npmrc", Stage: "0", Line: 2}},
	},
	{
		name:       "target from the id",
		dockerfile: dfLines("FROM alpine", "RUN --mount=type=secret,id=app/db cat /run/secrets/db"),
		secrets:    []Mount{{ID: "app/db", Target: "/run/secrets/db", Stage: "0", Line: 2}},
	},
	{
		name:       "id and target",
		dockerfile: dfLines("FROM alpine", "RUN --mount=type=secret,id=npm,dst=/root/.npmrc,mode=0400 npm ci"),
		secrets:    []Mount{{ID: "npm", Target: "/root/.npmrc", Stage: "0", Line: 2}},
	},
	{
		name:       "env mount has no target",
		dockerfile: dfLines("FROM alpine", "RUN --mount=type=secret,id=tok,env=TOKEN,required echo"),
		secrets:    []Mount{{ID: "tok", Required: true, Stage: "0", Line: 2}},
	},
	{
		name:       "env mount with a target",
		dockerfile: dfLines("FROM alpine", "RUN --mount=type=secret,id=tok,env=TOKEN,target=/t echo"),
		secrets:    []Mount{{ID: "tok", Target: "/t", Stage: "0", Line: 2}},
	},
	{
		name: "ssh",
		dockerfile: dfLines(
			"FROM alpine AS a",
			"RUN --mount=type=ssh git clone x",
			"RUN --mount=type=ssh,id=github,required=true,target=/agent git clone y",
			"FROM alpine",
			"RUN --mount=type=ssh,required git clone z",
		),
		ssh: []Mount{
			{ID: "default", Required: true, Stage: "a", Line: 2},
			{ID: "github", Required: true, Target: "/agent", Stage: "a", Line: 3},
		},
	},
	{
		name: "secret and ssh ids are apart",
		dockerfile: dfLines(
			"FROM alpine",
			"RUN --mount=type=secret,id=default --mount=type=ssh echo",
		),
		secrets: []Mount{{ID: "default", Target: "/run/secrets/default", Stage: "0", Line: 2}},
		ssh:     []Mount{{ID: "default", Stage: "0", Line: 2}},
	},
	{
		name: "heredoc and line continuations",
		dockerfile: dfLines(
			"FROM alpine",                            // 1
			"RUN --mount=type=secret,id=h <<EOF",     // 2
			"cat /run/secrets/h",                     // 3
			"--mount=type=secret,id=not-a-flag",      // 4
			"EOF",                                    // 5
			"RUN --mount=type=secret,id=c \\",        // 6
			"    --mount=type=ssh,id=gh \\",          // 7
			"    echo --mount=type=secret,id=no",     // 8
			"RUN <<EOF",                              // 9
			"RUN --mount=type=secret,id=inside echo", // 10
			"EOF",                                    // 11
		),
		secrets: []Mount{
			{ID: "h", Target: "/run/secrets/h", Stage: "0", Line: 2},
			{ID: "c", Target: "/run/secrets/c", Stage: "0", Line: 6},
		},
		ssh: []Mount{{ID: "gh", Stage: "0", Line: 6}},
	},
	{
		name: "other instructions and other mounts are ignored",
		dockerfile: dfLines(
			"FROM alpine",
			`LABEL x="--mount=type=secret,id=label"`,
			"ENV M=--mount=type=secret,id=env",
			"ONBUILD RUN --mount=type=secret,id=onbuild echo",
			`CMD ["echo", "--mount=type=secret,id=cmd"]`,
			"RUN --mount=type=cache,target=/cache,id=cache --mount=type=tmpfs,target=/t --mount=type=bind,target=/b echo",
			"# RUN --mount=type=secret,id=comment echo",
			"RUN echo --mount=type=secret,id=arg",
			"RUN --mount=type=secret,id=real echo",
		),
		secrets: []Mount{{ID: "real", Target: "/run/secrets/real", Stage: "0", Line: 9}},
	},
	{
		name: "first use gives target, stage and line",
		dockerfile: dfLines(
			"FROM alpine AS one",
			"RUN --mount=type=secret,id=x,target=/first echo",
			"FROM alpine AS two",
			"RUN --mount=type=secret,id=x,target=/second,required echo",
		),
		secrets: []Mount{{ID: "x", Required: true, Target: "/first", Stage: "one", Line: 2}},
	},

	// BuildKit takes a secret mount's source= as its id (dockerfile2llb's
	// dispatchSecret: "if m.Source != "" { id = m.Source }").
	{
		name:       "source= is the id",
		dockerfile: dfLines("FROM alpine", "RUN --mount=type=secret,source=npmrc,target=/root/.npmrc npm ci"),
		secrets:    []Mount{{ID: "npmrc", Target: "/root/.npmrc", Stage: "0", Line: 2}},
	},
	{
		name:       "src= alone",
		dockerfile: dfLines("FROM alpine", "RUN --mount=type=secret,src=tok cat /run/secrets/tok"),
		secrets:    []Mount{{ID: "tok", Target: "/run/secrets/tok", Stage: "0", Line: 2}},
	},
}

func TestParseDockerfile(t *testing.T) {
	for _, tt := range parseDockerfileTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDockerfile("Dockerfile", []byte(tt.dockerfile))
			if err != nil {
				t.Fatalf("parseDockerfile: got error %v", err)
			}
			if len(got.Secrets) > 0 || len(tt.secrets) > 0 {
				if !reflect.DeepEqual(got.Secrets, tt.secrets) {
					t.Errorf("secrets:\ngot  %s\nwant %s", mountsString(got.Secrets), mountsString(tt.secrets))
				}
			}
			if len(got.SSH) > 0 || len(tt.ssh) > 0 {
				if !reflect.DeepEqual(got.SSH, tt.ssh) {
					t.Errorf("ssh:\ngot  %s\nwant %s", mountsString(got.SSH), mountsString(tt.ssh))
				}
			}
		})
	}
}

func TestParseDockerfileFile(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "Dockerfile.dev")
	if err := os.WriteFile(name, []byte(dfLines("FROM alpine", "RUN --mount=type=secret,id=a echo")), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ParseDockerfile(name)
	if err != nil {
		t.Fatalf("ParseDockerfile(%s): got error %v", name, err)
	}
	if want := []Mount{{ID: "a", Target: "/run/secrets/a", Stage: "0", Line: 2}}; !reflect.DeepEqual(got.Secrets, want) {
		t.Errorf("ParseDockerfile(%s): got %s, want %s", name, mountsString(got.Secrets), mountsString(want))
	}

	missing := filepath.Join(dir, "nope", "Dockerfile")
	_, err = ParseDockerfile(missing)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ParseDockerfile(%s): got error %v, want one wrapping fs.ErrNotExist", missing, err)
	}
}

func TestParseDockerfileErrors(t *testing.T) {
	tests := []struct {
		name, dockerfile string
	}{
		{"empty", ""},
		{"comments only", dfLines("# nothing")},
		{"unknown instruction", dfLines("FROM alpine", "FETCH x")},
		{"RUN before FROM", dfLines("RUN --mount=type=secret,id=a echo")},
		{"unknown mount key", dfLines("FROM alpine", "RUN --mount=type=secret,id=a,bogus=1 echo")},
		{"unknown mount type", dfLines("FROM alpine", "RUN --mount=type=vault,id=a echo")},
		{"secret mount without id or target", dfLines("FROM alpine", "RUN --mount=type=secret,env=X echo")},
		{"secret with both source and id", dfLines("FROM alpine", "RUN --mount=type=secret,id=a,source=b echo")},
		{"bad required", dfLines("FROM alpine", "RUN --mount=type=secret,id=a,required=maybe echo")},
		{"unterminated heredoc", dfLines("FROM alpine", "RUN --mount=type=secret,id=a <<EOF", "echo")},
		{"FROM without image", dfLines("FROM")},
	}
	dir := t.TempDir()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := filepath.Join(dir, fmt.Sprintf("Dockerfile.%d", i))
			if err := os.WriteFile(name, []byte(tt.dockerfile), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := ParseDockerfile(name)
			if err == nil {
				t.Fatalf("ParseDockerfile(%q): got %+v, want an error", tt.dockerfile, got)
			}
			if !strings.Contains(err.Error(), name) {
				t.Errorf("ParseDockerfile(%q): got error %q, want one naming %s", tt.dockerfile, err, name)
			}
			if errors.Is(err, fs.ErrNotExist) {
				t.Errorf("ParseDockerfile(%q): got error %q wrapping fs.ErrNotExist, want a syntax error", tt.dockerfile, err)
			}
		})
	}
}

func TestIDs(t *testing.T) {
	ms := []Mount{{ID: "b"}, {ID: "a"}, {ID: "c"}}
	if got, want := ids(ms), []string{"a", "b", "c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ids: got %q, want %q", got, want)
	}
	if got := ids(nil); len(got) != 0 {
		t.Errorf("ids(nil): got %q, want none", got)
	}
}

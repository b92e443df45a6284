package build

import (
	"slices"
	"strings"
	"testing"
)

func FuzzParseDockerfile(f *testing.F) {
	for _, tt := range parseDockerfileTests {
		f.Add([]byte(tt.dockerfile))
	}
	for _, s := range []string{
		"",
		"FROM alpine\nRUN --mount=type=secret,id=a,target=/x,required=true,mode=0400,uid=1,gid=2,env=A echo\n",
		"FROM alpine\nRUN --mount=type=secret,target=/ echo\n",
		"FROM alpine\nRUN --mount=type=secret,target=. echo\n",
		"FROM alpine\nRUN --mount=type=secret,\"id=a,b\" echo\n",
		"FROM alpine\nARG ID=x\nRUN --mount=type=secret,id=$ID --mount=type=ssh,id=${ID:-y} echo\n",
		"FROM a AS b\nFROM b\nRUN --mount=type=ssh,id=,required echo\n",
		"# escape=`\nFROM alpine\nRUN --mount=type=secret,id=a `\n  echo\n",
		"FROM alpine\nRUN <<A <<B\nx\nA\ny\nB\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := parseDockerfile("Dockerfile", b)
		if err != nil {
			if !strings.Contains(err.Error(), "Dockerfile") {
				t.Errorf("error %q does not name the file", err)
			}
			return
		}
		for _, list := range [][]Mount{ms.Secrets, ms.SSH} {
			seen := map[string]bool{}
			for _, m := range list {
				if m.ID == "" {
					t.Errorf("got an empty id in %+v", m)
				}
				if seen[m.ID] {
					t.Errorf("id %q is listed twice", m.ID)
				}
				seen[m.ID] = true
				if m.Line <= 0 || m.Stage == "" {
					t.Errorf("mount %+v: want a line and a stage", m)
				}
			}
		}
	})
}

// fuzzArgsSep separates the arguments of FuzzParseBuildArgs's input.
const fuzzArgsSep = "\x00"

func FuzzParseBuildArgs(f *testing.F) {
	for _, tt := range parseBuildArgsTests {
		f.Add(strings.Join(tt.args, fuzzArgsSep))
	}
	for _, args := range [][]string{
		{"--", "-t", "x"},
		{"-t", "--", "."},
		{"--tag", "-t", "-t", "--tag", "."},
		{"--label", "-t", "--no-cache", "-t", "--no-cache", "."},
		{"-o", "-", "-"},
		{"-", "--"},
		{"="},
		{"-t="},
		{"--tag==", "."},
	} {
		f.Add(strings.Join(args, fuzzArgsSep))
	}
	f.Fuzz(func(t *testing.T, s string) {
		args := strings.Split(s, fuzzArgsSep)
		a, err := parseBuildArgs(args)
		if err != nil {
			return
		}
		if a.context == "" {
			t.Fatalf("parseBuildArgs(%q): got an empty context", args)
		}
		// The builder gets rest and -f (see argv); parsed again, they hold
		// no tag and mean the same.
		given := slices.Clone(a.rest)
		if a.dockerfile != "" {
			given = append(given, "-f", a.dockerfile)
		}
		again, err := parseBuildArgs(append(given, "--", a.context))
		if err != nil {
			t.Fatalf("parseBuildArgs(%q): %q and context %q do not parse again: %v", args, given, a.context, err)
		}
		if len(again.tags) > 0 {
			t.Errorf("parseBuildArgs(%q): rest %q still holds tags %q", args, a.rest, again.tags)
		}
		a.tags = nil
		if !argsEqual(again, a) {
			t.Errorf("parseBuildArgs(%q) parsed again:\ngot  %v\nwant %v", args, again, a)
		}
	})
}

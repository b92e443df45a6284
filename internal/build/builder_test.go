package build

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func mustParseBuildArgs(t *testing.T, args ...string) *buildArgs {
	t.Helper()
	a, err := parseBuildArgs(args)
	if err != nil {
		t.Fatalf("parseBuildArgs(%q): %v", args, err)
	}
	return a
}

func TestBuilderArgv(t *testing.T) {
	ds := []delivery{
		{id: "npm", env: "PRIVY_BUILD_SECRET_0"},
		{id: "big", file: "/dev/shm/privy-build-1/secret-1"},
		{id: "tok", env: "PRIVY_BUILD_SECRET_3"},
	}
	agents := map[string]string{"gh": "/dev/shm/privy-build-1/agent-1.sock", "default": "/dev/shm/privy-build-1/agent-0.sock"}
	const iid = "/dev/shm/privy-build-1/iid"
	secretArgs := []string{
		"--secret", "id=npm,env=PRIVY_BUILD_SECRET_0",
		"--secret", "id=big,src=/dev/shm/privy-build-1/secret-1",
		"--secret", "id=tok,env=PRIVY_BUILD_SECRET_3",
		"--ssh", "default=/dev/shm/privy-build-1/agent-0.sock",
		"--ssh", "gh=/dev/shm/privy-build-1/agent-1.sock",
	}
	cat := func(parts ...[]string) []string { return slices.Concat(parts...) }
	tests := []struct {
		name   string
		kind   string
		args   []string
		ds     []delivery
		agents map[string]string
		want   []string
	}{
		{
			name: "docker", kind: Docker, args: []string{"--build-arg", "A=1", "-t", "app:1", "--no-cache", "."}, ds: ds, agents: agents,
			want: cat([]string{"build", "--build-arg", "A=1", "--no-cache"}, secretArgs, []string{"--iidfile", iid, "."}),
		},
		{
			name: "buildx adds --load", kind: Buildx, args: []string{"-t", "app:1", "ctx"}, ds: ds, agents: agents,
			want: cat([]string{"buildx", "build"}, secretArgs, []string{"--iidfile", iid, "--load", "ctx"}),
		},
		{
			name: "buildx with --load", kind: Buildx, args: []string{"--load", "."},
			want: []string{"buildx", "build", "--load", "--iidfile", iid, "."},
		},
		{
			name: "buildx with --push", kind: Buildx, args: []string{"--push", "."},
			want: []string{"buildx", "build", "--push", "--iidfile", iid, "."},
		},
		{
			name: "buildx with -o type=registry", kind: Buildx, args: []string{"-o", "type=registry", "."},
			want: []string{"buildx", "build", "-o", "type=registry", "--iidfile", iid, "."},
		},
		{
			name: "caller's --iidfile", kind: Buildx, args: []string{"--iidfile", "/tmp/mine", "."},
			want: []string{"buildx", "build", "--iidfile", "/tmp/mine", "--load", "."},
		},
		{
			name: "caller's --iidfile=", kind: Docker, args: []string{"--iidfile=/tmp/mine", "."},
			want: []string{"build", "--iidfile=/tmp/mine", "."},
		},
		{
			name: "-f", kind: Docker, args: []string{"-f", "docker/Dockerfile", "."},
			want: []string{"build", "-f", "docker/Dockerfile", "--iidfile", iid, "."},
		},
		{
			name: "caller's --secret and --ssh pass through", kind: Docker,
			args: []string{"--secret", "id=mine,src=/f", "--ssh", "default", "."},
			want: []string{"build", "--secret", "id=mine,src=/f", "--ssh", "default", "--iidfile", iid, "."},
		},
		{
			name: "podman", kind: Podman, args: []string{"-t", "app:1", "--layers", "."},
			ds: []delivery{{id: "npm", file: "/dev/shm/p/secret-0"}}, agents: map[string]string{"default": "/dev/shm/p/agent-0.sock"},
			want: []string{"build", "--layers", "--secret", "id=npm,src=/dev/shm/p/secret-0", "--ssh", "default=/dev/shm/p/agent-0.sock", "--iidfile", iid, "."},
		},
		{
			name: "buildah", kind: Buildah, args: []string{"--push", "."},
			ds:   []delivery{{id: "npm", file: "/dev/shm/p/secret-0"}},
			want: []string{"build", "--push", "--secret", "id=npm,src=/dev/shm/p/secret-0", "--iidfile", iid, "."},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &builder{kind: tt.kind, path: "/usr/bin/" + tt.kind}
			a := mustParseBuildArgs(t, tt.args...)
			got := b.argv(a, tt.ds, tt.agents, iid)
			if !slices.Equal(got, tt.want) {
				t.Errorf("argv:\ngot  %q\nwant %q", got, tt.want)
			}
			for _, tag := range a.tags {
				if slices.Contains(got, tag) {
					t.Errorf("argv %q holds the tag %q: privy tags only after the guard", got, tag)
				}
			}
		})
	}
}

// TestBuilderArgvParsesAgain reads the builder's arguments back as the
// builder would: the context and Dockerfile are the ones privy read.
func TestBuilderArgvParsesAgain(t *testing.T) {
	for _, args := range [][]string{
		{"-t", "a", "--build-arg", "X=1", "."},
		{"ctx", "-f", "docker/Dockerfile", "--target", "final"},
		{"--file=Dockerfile.dev", "--no-cache", "ctx"},
		// A context that looks like a flag, given after "--". Fails on a
		// bug (see the report): argv drops the "--".
		{"-t", "a", "--", "-ctx"},
	} {
		a := mustParseBuildArgs(t, args...)
		for _, kind := range []string{Docker, Buildx, Podman} {
			b := &builder{kind: kind, path: "/usr/bin/" + kind}
			argv := b.argv(a, []delivery{{id: "s", env: "PRIVY_BUILD_SECRET_0"}}, map[string]string{"default": "/x/agent.sock"}, "/x/iid")
			words := 1
			if kind == Buildx {
				words = 2
			}
			got, err := parseBuildArgs(argv[words:])
			if err != nil {
				t.Errorf("%s argv %q for %q: does not parse again: %v", kind, argv, args, err)
				continue
			}
			if got.context != a.context || got.dockerfile != a.dockerfile || len(got.tags) != 0 {
				t.Errorf("%s argv %q for %q: got context %q, Dockerfile %q, tags %q; want %q, %q, none",
					kind, argv, args, got.context, got.dockerfile, got.tags, a.context, a.dockerfile)
			}
		}
	}
}

func TestBuilderUsesEnv(t *testing.T) {
	for kind, want := range map[string]bool{Docker: true, Buildx: true, Podman: false, Buildah: false} {
		if got := (&builder{kind: kind}).usesEnv(); got != want {
			t.Errorf("usesEnv for %s: got %v, want %v", kind, got, want)
		}
	}
}

func TestBuilderEnv(t *testing.T) {
	base := []string{
		"PATH=/usr/bin:/bin",
		"HOME=/root",
		"PRIVY_TOKEN=VALUE-token",
		"PRIVY_MASTER_KEY=VALUE-master-key",
		"PRIVY_BUILD_SECRET_7=VALUE-stale",
		"PRIVY_BUILD_SECRET_0=VALUE-stale-0",
		"DOCKER_BUILDKIT=0",
		"PRIVY_ADDR=/run/privy.sock",
		"BUILDX_BUILDER=ci",
		"EMPTY=",
	}
	ds := []delivery{
		{id: "npm", env: "PRIVY_BUILD_SECRET_0"},
		{id: "big", file: "/dev/shm/p/secret-1"},
		{id: "tok", env: "PRIVY_BUILD_SECRET_2"},
	}
	values := map[string][]byte{
		"npm": []byte("VALUE-npm"),
		"big": []byte("VALUE-big-in-a-file"),
		"tok": []byte("VALUE-tok\nwith a newline"),
	}
	kept := []string{"PATH=/usr/bin:/bin", "HOME=/root", "PRIVY_ADDR=/run/privy.sock", "BUILDX_BUILDER=ci", "EMPTY="}
	delivered := []string{"PRIVY_BUILD_SECRET_0=VALUE-npm", "PRIVY_BUILD_SECRET_2=VALUE-tok\nwith a newline"}
	tests := []struct {
		kind string
		ds   []delivery
		want []string
	}{
		{Docker, ds, slices.Concat(kept, []string{"DOCKER_BUILDKIT=1"}, delivered)},
		{Buildx, ds, slices.Concat(kept[:2], []string{"DOCKER_BUILDKIT=0"}, kept[2:], delivered)},
		// podman and buildah get files only (Run never gives them env
		// deliveries): nothing is added.
		{Podman, []delivery{{id: "big", file: "/dev/shm/p/secret-1"}}, slices.Concat(kept[:2], []string{"DOCKER_BUILDKIT=0"}, kept[2:])},
		{Buildah, nil, slices.Concat(kept[:2], []string{"DOCKER_BUILDKIT=0"}, kept[2:])},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			b := &builder{kind: tt.kind}
			got := b.env(slices.Clone(base), tt.ds, values)
			if !slices.Equal(got, tt.want) {
				t.Errorf("env:\ngot  %q\nwant %q", got, tt.want)
			}
			// Each value is in the environment only under its own name.
			for _, kv := range got {
				k, v, _ := strings.Cut(kv, "=")
				for id, val := range values {
					if !strings.Contains(v, string(val)) {
						continue
					}
					i := slices.IndexFunc(tt.ds, func(d delivery) bool { return d.id == id && d.env == k })
					if i < 0 {
						t.Errorf("env: the value of %s is in %s", id, k)
					}
				}
				for _, stale := range []string{"VALUE-token", "VALUE-master-key", "VALUE-stale"} {
					if strings.Contains(kv, stale) {
						t.Errorf("env: got %q, want privy's credentials and stale deliveries dropped", k)
					}
				}
			}
			// argv never carries a value.
			argv := b.argv(mustParseBuildArgs(t, "."), tt.ds, nil, "/x/iid")
			checkNoValues(t, [][]byte{values["npm"], values["big"], values["tok"]}, argv...)
		})
	}
}

// fakeDocker writes a docker CLI into dir that prints version v and has
// the buildx plugin if buildx is set.
func fakeDocker(t *testing.T, dir, name, v string, buildx bool) string {
	t.Helper()
	bx := "exit 1"
	if buildx {
		bx = "echo 'github.com/docker/buildx v0.12.1'; exit 0"
	}
	script := "#!/bin/sh\n" +
		"if [ \"$1\" = buildx ]; then " + bx + "; fi\n" +
		"if [ \"$1\" = version ]; then echo '" + v + "'; exit 1; fi\n" + // exits 1 as when no engine answers
		"exit 2\n"
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func fakeProgram(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFindBuilderNothingOnPath(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	ctx := context.Background()
	tests := []struct {
		kind, docker, want string
	}{
		{"", "", "no builder found"},
		{Docker, "", "builder docker: docker not found"},
		{Buildx, "", "builder buildx: docker not found"},
		{Docker, "/nonexistent/docker", "builder docker: /nonexistent/docker not found"},
		{Podman, "", "builder podman: not found on PATH"},
		{Buildah, "", "builder buildah: not found on PATH"},
		{"kaniko", "", `unknown builder "kaniko"`},
		{"Docker", "", `unknown builder "Docker"`},
	}
	for _, tt := range tests {
		b, err := findBuilder(ctx, tt.kind, tt.docker)
		if err == nil {
			t.Errorf("findBuilder(%q, %q): got %+v, want an error containing %q", tt.kind, tt.docker, b, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("findBuilder(%q, %q): got error %q, want one containing %q", tt.kind, tt.docker, err, tt.want)
		}
	}
}

func TestFindBuilder(t *testing.T) {
	ctx := context.Background()
	bin := t.TempDir()
	old := fakeDocker(t, bin, "docker-20", "20.10.24", false)
	oldBuildx := fakeDocker(t, bin, "docker-20-buildx", "20.10.24", true)
	modern := fakeDocker(t, bin, "docker-28", "28.2.2", false)
	modernBuildx := fakeDocker(t, bin, "docker-28-buildx", "28.2.2", true)
	noVersion := fakeDocker(t, bin, "docker-broken", "", false)

	tests := []struct {
		name, kind, docker string
		wantKind, wantPath string
		wantErr            string // a part of the error, if one is wanted
	}{
		{name: "old client", docker: old, wantKind: Docker, wantPath: old},
		{name: "old client as docker", kind: Docker, docker: old, wantKind: Docker, wantPath: old},
		{name: "old client as buildx", kind: Buildx, docker: old, wantErr: "has no buildx plugin"},
		{name: "old client with buildx", docker: oldBuildx, wantKind: Buildx, wantPath: oldBuildx},
		{name: "old client with buildx, as docker", kind: Docker, docker: oldBuildx, wantKind: Docker, wantPath: oldBuildx},
		{name: "new client without buildx", docker: modern, wantErr: "needs the buildx plugin"},
		{name: "new client without buildx, as docker", kind: Docker, docker: modern, wantErr: "docker 28.2.2"},
		{name: "new client with buildx", docker: modernBuildx, wantKind: Buildx, wantPath: modernBuildx},
		{name: "new client with buildx, as buildx", kind: Buildx, docker: modernBuildx, wantKind: Buildx, wantPath: modernBuildx},
		{name: "new client with buildx, as docker", kind: Docker, docker: modernBuildx, wantErr: "buildx"},
		{name: "no version", docker: noVersion, wantErr: "cannot tell the version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := findBuilder(ctx, tt.kind, tt.docker)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("findBuilder(%q, %s): got %+v, %v; want an error containing %q", tt.kind, filepath.Base(tt.docker), b, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("findBuilder(%q, %s): got error %v", tt.kind, filepath.Base(tt.docker), err)
			}
			if b.kind != tt.wantKind || b.path != tt.wantPath {
				t.Errorf("findBuilder(%q, %s): got %s at %s, want %s at %s", tt.kind, filepath.Base(tt.docker), b.kind, b.path, tt.wantKind, tt.wantPath)
			}
		})
	}
}

func TestFindBuilderOnPath(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		programs []string // docker is an old client with buildx
		kind     string
		wantKind string
	}{
		{"docker first", []string{"docker", "podman", "buildah"}, "", Buildx},
		{"then podman", []string{"podman", "buildah"}, "", Podman},
		{"then buildah", []string{"buildah"}, "", Buildah},
		{"podman asked for", []string{"docker", "podman"}, Podman, Podman},
		{"buildah asked for", []string{"docker", "buildah"}, Buildah, Buildah},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin := t.TempDir()
			t.Setenv("PATH", bin)
			for _, p := range tt.programs {
				if p == "docker" {
					fakeDocker(t, bin, "docker", "20.10.24", true)
				} else {
					fakeProgram(t, bin, p)
				}
			}
			b, err := findBuilder(ctx, tt.kind, "")
			if err != nil {
				t.Fatalf("findBuilder(%q): got error %v", tt.kind, err)
			}
			if b.kind != tt.wantKind || filepath.Dir(b.path) != bin {
				t.Errorf("findBuilder(%q): got %s at %s, want %s in %s", tt.kind, b.kind, b.path, tt.wantKind, bin)
			}
		})
	}
	// PRIVY_DOCKER names a docker CLI that is not there: podman is next.
	bin := t.TempDir()
	t.Setenv("PATH", bin)
	fakeProgram(t, bin, "podman")
	b, err := findBuilder(ctx, "", filepath.Join(bin, "no-docker"))
	if err != nil || b.kind != Podman {
		t.Errorf("findBuilder with a missing PRIVY_DOCKER: got %+v, %v; want podman", b, err)
	}
}

// mountType returns the file system type of the mount that holds dir,
// from /proc/self/mounts.
func mountType(t *testing.T, dir string) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		t.Fatalf("privy build needs Linux, and this test /proc/self/mounts: %v", err)
	}
	defer f.Close()
	best, typ := "", ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			continue
		}
		mp := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(fields[1])
		if (dir == mp || strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best, typ = mp, fields[2]
		}
	}
	return typ
}

func TestOnTmpfs(t *testing.T) {
	if !onTmpfs("/dev/shm") {
		t.Errorf("onTmpfs(/dev/shm): got false, want true")
	}
	if onTmpfs("/nonexistent/dir") {
		t.Errorf("onTmpfs(/nonexistent/dir): got true, want false")
	}
	dir := t.TempDir()
	typ := mountType(t, dir)
	want := typ == "tmpfs" || typ == "ramfs"
	if got := onTmpfs(dir); got != want {
		t.Errorf("onTmpfs(%s) on a %s: got %v, want %v", dir, typ, got, want)
	}
	if got, want := onTmpfs("/proc"), false; got != want {
		t.Errorf("onTmpfs(/proc): got %v, want %v", got, want)
	}
}

func TestPrivateDir(t *testing.T) {
	check := func(t *testing.T, wantParent string) {
		t.Helper()
		d, err := privateDir()
		if err != nil {
			t.Fatalf("privateDir: %v", err)
		}
		defer os.Remove(d)
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("privateDir %s: got mode %v, want a directory with mode 0700", d, fi.Mode())
		}
		if !onTmpfs(d) {
			t.Errorf("privateDir %s: not on a tmpfs (%s)", d, mountType(t, d))
		}
		if filepath.Dir(d) != wantParent {
			t.Errorf("privateDir: got %s, want it in %s", d, wantParent)
		}
	}
	t.Run("no XDG_RUNTIME_DIR", func(t *testing.T) {
		t.Setenv("XDG_RUNTIME_DIR", "")
		check(t, "/dev/shm")
	})
	t.Run("XDG_RUNTIME_DIR on a tmpfs", func(t *testing.T) {
		xdg, err := os.MkdirTemp("/dev/shm", "xdg-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(xdg)
		t.Setenv("XDG_RUNTIME_DIR", xdg)
		check(t, xdg)
	})
	t.Run("XDG_RUNTIME_DIR not on a tmpfs", func(t *testing.T) {
		// A directory not on a tmpfs: the test's temporary one, or else
		// one beside the package's sources.
		xdg := t.TempDir()
		if onTmpfs(xdg) {
			d, err := os.MkdirTemp(".", "xdg-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(d) })
			if xdg, err = filepath.Abs(d); err != nil || onTmpfs(xdg) {
				t.Fatalf("found no directory off a tmpfs to test with (%s: %v)", xdg, err)
			}
		}
		t.Setenv("XDG_RUNTIME_DIR", xdg)
		check(t, "/dev/shm")
	})
	t.Run("XDG_RUNTIME_DIR missing", func(t *testing.T) {
		t.Setenv("XDG_RUNTIME_DIR", "/nonexistent/run")
		check(t, "/dev/shm")
	})
}

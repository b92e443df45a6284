package main

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets the test binary act as the privy command inside scripts.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"privy": func() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the CLI scripts in testdata: each one is a user session
// typed at a shell, with its own data directory, config and socket.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup:               setupScript,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exitcode":   cmdExitcode,
			"perm":       cmdPerm,
			"replace":    cmdReplace,
			"setenvfile": cmdSetenvfile,
			"waitsock":   cmdWaitsock,
		},
	})
}

// maxSocketPath leaves room under the 108-byte limit of sun_path.
const maxSocketPath = 100

func setupScript(env *testscript.Env) error {
	sock := filepath.Join(env.WorkDir, "privy.sock")
	if len(sock) > maxSocketPath {
		dir, err := os.MkdirTemp("", "pv")
		if err != nil {
			return err
		}
		env.Defer(func() { os.RemoveAll(dir) })
		sock = filepath.Join(dir, "s")
	}
	env.Setenv("PRIVY_DATA_DIR", filepath.Join(env.WorkDir, "data"))
	env.Setenv("XDG_CONFIG_HOME", filepath.Join(env.WorkDir, "config"))
	env.Setenv("HOME", filepath.Join(env.WorkDir, "home"))
	env.Setenv("PRIVY_ADDR", sock)
	env.Setenv("PRIVY_TOKEN", "")
	env.Setenv("PRIVY_MASTER_KEY", "")
	env.Setenv("XDG_RUNTIME_DIR", "")
	env.Setenv("XDG_DATA_HOME", "")
	return nil
}

// exitcode N CMD [ARGS...] runs CMD like exec and checks that it exits
// with code N; stdout and stderr are kept for the assertions that follow.
func cmdExitcode(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! exitcode (give the expected code instead)")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: exitcode N command [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exitcode: %q is not a number", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exitcode: running %s: %v", args[1], err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with code %d, want %d", args[1], got, want)
	}
}

// perm MODE FILE... checks the permission bits of files, e.g. perm 0600 f;
// with ! it checks that they differ.
func cmdPerm(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: perm MODE file...")
	}
	want, err := strconv.ParseUint(args[0], 8, 32)
	if err != nil {
		ts.Fatalf("perm: %q is not an octal mode", args[0])
	}
	for _, f := range args[1:] {
		fi, err := os.Stat(ts.MkAbs(f))
		ts.Check(err)
		got := fi.Mode().Perm()
		switch {
		case !neg && got != os.FileMode(want):
			ts.Fatalf("%s has mode %04o, want %04o", f, got, want)
		case neg && got == os.FileMode(want):
			ts.Fatalf("%s has mode %04o", f, got)
		}
	}
}

// replace FILE OLD NEW replaces the first OLD in FILE with NEW (for
// tampering with a file); it fails if OLD is not there.
func cmdReplace(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: replace file old new")
	}
	name := ts.MkAbs(args[0])
	data := ts.ReadFile(args[0])
	if !strings.Contains(data, args[1]) {
		ts.Fatalf("replace: %q not found in %s", args[1], args[0])
	}
	fi, err := os.Stat(name)
	ts.Check(err)
	ts.Check(os.WriteFile(name, []byte(strings.Replace(data, args[1], args[2], 1)), fi.Mode().Perm()))
}

// setenvfile VAR FILE [REGEXP] sets VAR to the trimmed content of FILE (which
// may be stdout or stderr), or with REGEXP to its first submatch there.
func cmdSetenvfile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: setenvfile VAR file [regexp]")
	}
	data := ts.ReadFile(args[1])
	val := strings.TrimSpace(data)
	if len(args) == 3 {
		re, err := regexp.Compile(`(?m)` + args[2])
		ts.Check(err)
		m := re.FindStringSubmatch(data)
		if len(m) < 2 {
			ts.Fatalf("setenvfile: no match for %q (with a submatch) in %s", args[2], args[1])
		}
		val = m[1]
	}
	if val == "" {
		ts.Fatalf("setenvfile: %s gives an empty value", args[1])
	}
	ts.Setenv(args[0], val)
}

// waitsock PATH waits up to 10s until a server accepts connections on the
// unix socket PATH. It only connects, sending no request, so that it adds
// no line to the audit log and scripts can count on line numbers.
func cmdWaitsock(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitsock path")
	}
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		var c net.Conn
		if c, err = net.DialTimeout("unix", args[0], time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	ts.Fatalf("no server on %s after 10s: %v", args[0], err)
}

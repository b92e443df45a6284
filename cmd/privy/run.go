package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/deliver"
	"github.com/privyhq/privy/internal/profile"
	"github.com/privyhq/privy/internal/server"
)

const runHelp = `Run a container with a profile's secrets: privy adds the arguments to the
docker run command that follows "--" and runs it.

By default privy adds a privy volume (the Docker volume plugin that
` + "`privy server --docker-plugin privy`" + ` serves) at --dest: a fresh tmpfs for this
container holding only the profile's files. --private SRC:DEST adds a file
of this host for this one container: it is uploaded to the server for
exactly one mount, which takes it, after which the server forgets it.

With --init privy instead makes the container start with privy exec as its
entrypoint (the static privy binary and the server's socket are mounted
read-only, a tmpfs is mounted at --dest, and the container is labelled
privy.profile=PROFILE so that the server identifies it without a token);
the image's command runs after the files are in place.`

type runOptions struct {
	profile string
	private []string
	dest    string
	init    bool
	driver  string
	size    string
}

func (a *app) runCommand() *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run --profile NAME [--private SRC:DEST]... [--init] -- docker run [ARGS...]",
		Short: "Run docker run with a profile's files on a per-container tmpfs",
		Long:  runHelp,
		Example: `  privy run --profile web -- docker run -d myapp
  privy run --profile web --private ./api.key:api.key -- docker run -d myapp
  privy run --init --profile dns -- docker run -d mydns dnsmasq -k`,
		RunE: func(cmd *cobra.Command, args []string) error {
			argv, err := a.runArgs(cmd.Context(), o, args)
			if err != nil {
				return err
			}
			c := exec.CommandContext(cmd.Context(), argv[0], argv[1:]...)
			c.Stdin, c.Stdout, c.Stderr = a.stdin, a.stdout, a.stderr
			c.Env = commandEnv(os.Environ())
			if err := c.Run(); err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					return exitStatus(ee.ExitCode())
				}
				return fmt.Errorf("running %s: %w", argv[0], err)
			}
			return nil
		},
	}
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().StringVar(&o.profile, "profile", "", "the profile whose files the container gets (required)")
	cmd.Flags().StringArrayVar(&o.private, "private", nil, "SRC:DEST: a host file for this container only, at DEST under --dest (repeatable)")
	cmd.Flags().StringVar(&o.dest, "dest", "/run/secrets", "where the files appear in the container")
	cmd.Flags().BoolVar(&o.init, "init", false, "use privy exec as the container's entrypoint instead of the volume plugin")
	cmd.Flags().StringVar(&o.driver, "driver", "privy", "the volume driver name the privy server serves (--docker-plugin NAME)")
	cmd.Flags().StringVar(&o.size, "size", "", "size limit of the tmpfs (e.g. 16m)")
	return cmd
}

// runArgs checks everything and returns the docker command to run. Per-run
// files are uploaded last, once nothing else can fail.
func (a *app) runArgs(ctx context.Context, o runOptions, args []string) ([]string, error) {
	if o.profile == "" {
		return nil, usageError{errors.New("no --profile given: privy run --profile NAME -- docker run ...")}
	}
	if err := profile.CheckName(o.profile); err != nil {
		return nil, usageError{err}
	}
	if !path.IsAbs(o.dest) || path.Clean(o.dest) != o.dest || strings.ContainsAny(o.dest, ",:") {
		return nil, usageError{fmt.Errorf("--dest %q: give a clean absolute path without ',' or ':'", o.dest)}
	}
	if strings.ContainsAny(o.driver, ",=") || o.driver == "" {
		return nil, usageError{fmt.Errorf("--driver %q is not a plugin name", o.driver)}
	}
	if strings.ContainsAny(o.size, ",=") {
		return nil, usageError{fmt.Errorf("--size %q: give a size such as 16m", o.size)}
	}
	run, err := findRun(args)
	if err != nil {
		return nil, usageError{err}
	}
	files, err := readPrivate(o.private)
	defer func() {
		for _, f := range files {
			clear(f.Value)
		}
	}()
	if err != nil {
		return nil, err
	}
	if o.init {
		if len(files) > 0 {
			return nil, usageError{errors.New("--private needs the volume plugin (its files serve one mount, and a restarted container would lose them): drop --init")}
		}
		if strings.Contains(strings.TrimPrefix(a.serverAddr(), "unix://"), "://") {
			return nil, usageError{fmt.Errorf("--init mounts the server's unix socket into the container, but the server address is %s: run it on this host", a.serverAddr())}
		}
		// With a token, check the profile exists before a container is
		// started for it; without one the container's own identity is
		// what the server checks.
		if tok, err := a.loadToken(); err == nil && tok != "" {
			c, err := a.client(true)
			if err != nil {
				return nil, err
			}
			if _, err := c.GetProfile(ctx, o.profile, 0); err != nil {
				return nil, err
			}
		}
		return a.initArgs(ctx, o, args, run)
	}
	c, err := a.client(true)
	if err != nil {
		return nil, err
	}
	// The profile must exist before a container is started for it.
	if _, err := c.GetProfile(ctx, o.profile, 0); err != nil {
		return nil, err
	}
	mount := fmt.Sprintf("type=volume,dst=%s,volume-driver=%s,volume-opt=profile=%s", o.dest, o.driver, o.profile)
	if o.size != "" {
		mount += ",volume-opt=size=" + o.size
	}
	if len(files) > 0 {
		t, err := c.Oneshot(ctx, o.profile, files)
		if err != nil {
			return nil, err
		}
		mount += ",volume-opt=oneshot=" + t.Ticket
	}
	return insertArgs(args, run, "--mount", mount), nil
}

// readPrivate reads --private SRC:DEST files.
func readPrivate(specs []string) ([]api.OneshotFile, error) {
	var out []api.OneshotFile
	for _, s := range specs {
		src, dest, ok := strings.Cut(s, ":")
		if !ok || src == "" || dest == "" {
			return out, usageError{fmt.Errorf("--private %q: use SRC:DEST, e.g. ./api.key:api.key", s)}
		}
		if err := deliver.CheckName(dest); err != nil {
			return out, usageError{fmt.Errorf("--private %q: DEST: %w", s, err)}
		}
		fi, err := os.Stat(src)
		if err != nil {
			return out, fmt.Errorf("--private %q: %w", s, err)
		}
		if !fi.Mode().IsRegular() {
			return out, usageError{fmt.Errorf("--private %q: %s is not a regular file", s, src)}
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return out, fmt.Errorf("--private %q: %w", s, err)
		}
		out = append(out, api.OneshotFile{Name: dest, Value: b, Mode: 0o400})
	}
	return out, nil
}

// initArgs makes the container start with privy exec.
func (a *app) initArgs(ctx context.Context, o runOptions, args []string, run int) ([]string, error) {
	sock := strings.TrimPrefix(a.serverAddr(), "unix://")
	if strings.Contains(sock, "://") {
		return nil, usageError{fmt.Errorf("--init mounts the server's unix socket into the container, but the server address is %s: run it on this host", sock)}
	}
	sock, err := filepath.Abs(sock)
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding the privy binary to mount: %w", err)
	}
	img, err := imageIndex(args, run)
	if err != nil {
		return nil, usageError{err}
	}
	for _, f := range args[run+1 : img] {
		if f == "--entrypoint" || strings.HasPrefix(f, "--entrypoint=") {
			return nil, usageError{errors.New("privy run --init sets the entrypoint itself: give the command after the image instead of --entrypoint")}
		}
	}
	// As docker does: the image's entrypoint, then the arguments given
	// after the image or else the image's command.
	entrypoint, cmd, err := imageCommand(ctx, args[0], args[img])
	if err != nil {
		return nil, err
	}
	if given := args[img+1:]; len(given) > 0 {
		cmd = given
	}
	command := append(entrypoint, cmd...)
	if len(command) == 0 {
		return nil, usageError{fmt.Errorf("image %s has no entrypoint or command: give one after the image", args[img])}
	}
	tmpfs := o.dest + ":rw,noexec,nosuid,nodev,mode=0700"
	if o.size != "" {
		tmpfs += ",size=" + o.size
	}
	flags := []string{
		"--label", server.ContainerLabel + "=" + o.profile,
		"--mount", "type=bind,src=" + self + ",dst=/usr/local/bin/privy,readonly",
		"--mount", "type=bind,src=" + sock + ",dst=/run/privy/privy.sock",
		"--tmpfs", tmpfs,
		"--entrypoint", "/usr/local/bin/privy",
	}
	out := append([]string{}, args[:run+1]...)
	out = append(out, flags...)
	out = append(out, args[run+1:img+1]...)
	out = append(out, "exec", "--profile", o.profile, "--dir", o.dest, "--addr", "/run/privy/privy.sock", "--")
	return append(out, command...), nil
}

// imageCommand asks the engine for an image's entrypoint and command.
func imageCommand(ctx context.Context, docker, image string) (entrypoint, cmd []string, err error) {
	b, err := exec.CommandContext(ctx, docker, "image", "inspect", "--format", "{{json .Config.Entrypoint}} {{json .Config.Cmd}}", image).Output()
	if err != nil {
		return nil, nil, fmt.Errorf("%s image inspect %s failed: %w (privy run --init needs the image's entrypoint: pull the image first)", docker, image, err)
	}
	ep, c, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	json.Unmarshal([]byte(ep), &entrypoint)
	json.Unmarshal([]byte(c), &cmd)
	return entrypoint, cmd, nil
}

// findRun returns the index of "run" in a docker (or podman) run command.
func findRun(args []string) (int, error) {
	if len(args) < 2 {
		return 0, errors.New("no docker run command after --: privy run --profile NAME -- docker run [ARGS...] IMAGE")
	}
	for i := 1; i < len(args) && i <= 2; i++ {
		if args[i] == "run" {
			return i, nil
		}
		if args[i] != "container" {
			break
		}
	}
	return 0, fmt.Errorf("%q is not a docker run command: give `docker run ...` (or `docker container run ...`) after --", strings.Join(args[:min(len(args), 3)], " "))
}

// insertArgs puts extra right after "run".
func insertArgs(args []string, run int, extra ...string) []string {
	out := append([]string{}, args[:run+1]...)
	out = append(out, extra...)
	return append(out, args[run+1:]...)
}

// runBoolFlags are docker run's flags that take no value; every other
// flag takes one (as a separate argument unless written --flag=value).
var runBoolFlags = map[string]bool{
	"-d": true, "--detach": true, "-i": true, "--interactive": true, "-t": true, "--tty": true,
	"--rm": true, "--init": true, "--privileged": true, "--read-only": true, "-P": true,
	"--publish-all": true, "--no-healthcheck": true, "--oom-kill-disable": true,
	"--sig-proxy": true, "--disable-content-trust": true, "-q": true, "--quiet": true, "--help": true,
}

// imageIndex returns the index of the image in a docker run command.
func imageIndex(args []string, run int) (int, error) {
	for i := run + 1; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			if i+1 < len(args) {
				return i + 1, nil
			}
		case strings.HasPrefix(a, "--"):
			if !strings.Contains(a, "=") && !runBoolFlags[a] {
				i++
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			// Short flags, possibly combined (-it); a value flag takes the
			// rest of the word or the next argument.
			for j := 1; j < len(a); j++ {
				if !runBoolFlags["-"+a[j:j+1]] {
					if j == len(a)-1 {
						i++
					}
					break
				}
			}
		default:
			return i, nil
		}
	}
	return 0, errors.New("no image in the docker run command")
}

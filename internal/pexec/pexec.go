// Package pexec is privy exec: the entrypoint that fetches a container's
// profile, places its files on a tmpfs, clones its git configuration
// repositories with a built-in git client, runs the profile's post hook,
// and then becomes the container's command (or, supervising, keeps the
// files current while the command runs).
//
// Everything that can fail happens before the command starts; a failure
// leaves the directory empty, so a restarted container never runs on
// stale files.
package pexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/client"
	"github.com/privyhq/privy/internal/deliver"
	"github.com/privyhq/privy/internal/profile"
)

// DefaultDir is where the files go unless Options.Dir says otherwise.
const DefaultDir = "/run/secrets"

// Options configure Run.
type Options struct {
	Profile   string
	Dir       string   // default DefaultDir
	AllowDisk bool     // write even if Dir is not on a tmpfs
	NoPost    bool     // skip the profile's post hook
	Supervise bool     // stay as a minimal init that applies rotations
	Command   []string // the command to become; required
	// Env is the command's environment (the caller removes privy's own
	// variables, such as PRIVY_TOKEN, from it).
	Env    []string
	Stdout io.Writer // for the post hook; default os.Stdout
	Stderr io.Writer // for the post hook and messages; default os.Stderr
}

// Error is a failure before the command started: Stage names what failed
// ("fetching profile", "cloning repo …", "post hook").
type Error struct {
	Stage string
	Err   error
}

func (e *Error) Error() string { return "privy exec: " + e.Stage + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Prepare fetches the profile and places every file in o.Dir, then runs
// the post hook. It returns the rendered profile (values cleared).
func Prepare(ctx context.Context, c *client.Client, o *Options) (*api.Rendered, error) {
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if err := profile.CheckName(o.Profile); err != nil {
		return nil, &Error{"checking --profile", err}
	}
	// A command that cannot start is found out before any file is placed.
	if _, err := exec.LookPath(o.Command[0]); err != nil {
		return nil, &Error{"finding " + o.Command[0], err}
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, &Error{"creating " + o.Dir, err}
	}
	if !o.AllowDisk {
		if err := deliver.RequireTmpfs(o.Dir); err != nil {
			return nil, &Error{"checking " + o.Dir, fmt.Errorf("%w; or pass --allow-disk to accept a disk-backed directory", err)}
		}
	}
	// The old files go first: whatever fails below, the command never
	// starts on what an earlier run left.
	if err := deliver.Wipe(o.Dir); err != nil {
		return nil, &Error{"wiping " + o.Dir, err}
	}
	r, err := c.Render(ctx, o.Profile, api.RenderRequest{})
	if err != nil {
		return nil, &Error{fmt.Sprintf("fetching profile %q from %s", o.Profile, c.Addr()), err}
	}
	files, err := Files(ctx, r)
	defer clearFiles(files)
	clearRendered(r)
	if err != nil {
		return nil, err
	}
	if err := deliver.Write(o.Dir, files, o.AllowDisk); err != nil {
		deliver.Wipe(o.Dir)
		return nil, &Error{"writing files", err}
	}
	if len(r.Post) > 0 && !o.NoPost {
		if err := runPost(ctx, r.Post, o); err != nil {
			deliver.Wipe(o.Dir)
			return nil, &Error{"post hook " + strings.Join(r.Post, " "), err}
		}
	}
	return r, nil
}

// Files turns a rendered profile into the files to place: each repo's
// files first, then the profile's own files, which override them.
func Files(ctx context.Context, r *api.Rendered) ([]deliver.File, error) {
	var out []deliver.File
	idx := map[string]int{}
	add := func(f deliver.File) {
		if i, ok := idx[f.Name]; ok {
			out[i] = f
			return
		}
		idx[f.Name] = len(out)
		out = append(out, f)
	}
	for _, repo := range r.Repos {
		fs, err := deliver.FetchRepo(ctx, repo)
		if err != nil {
			return out, &Error{"cloning repo " + profile.RedactURL(repo.URL), err}
		}
		for _, f := range fs {
			add(f)
		}
	}
	for _, f := range r.Files {
		origin := "secret " + f.Secret
		if f.Secret == "" {
			origin = "per-run file " + f.Name
		}
		add(deliver.File{Name: f.Name, Mode: fs.FileMode(f.Mode), UID: f.UID, GID: f.GID,
			Data: append([]byte(nil), f.Value...), Origin: origin})
	}
	return out, nil
}

func clearFiles(fs []deliver.File) {
	for _, f := range fs {
		clear(f.Data)
	}
}

func clearRendered(r *api.Rendered) {
	for _, f := range r.Files {
		clear(f.Value)
	}
	for _, x := range r.Repos {
		clear(x.SSHKeyValue)
		clear(x.PasswordValue)
		clear(x.AgeIdentityValue)
	}
}

// runPost runs the post hook in o.Dir with the command's environment.
func runPost(ctx context.Context, argv []string, o *Options) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = o.Dir
	cmd.Env = o.Env
	cmd.Stdout, cmd.Stderr = o.Stdout, o.Stderr
	return cmd.Run()
}

// Exec replaces the process with the command (PID 1 handoff: signals go
// straight to it). It returns only on failure.
func Exec(o *Options) error {
	path, err := exec.LookPath(o.Command[0])
	if err != nil {
		return &Error{"starting " + o.Command[0], err}
	}
	err = syscall.Exec(path, o.Command, o.Env)
	deliver.Wipe(o.Dir)
	return &Error{"starting " + o.Command[0], err}
}

// Supervise runs the command as a child, forwards every signal to it, and
// applies rotations: each new version of a secret of the profile is
// placed atomically and, if the profile says so, the command is signalled.
// It returns the command's exit code.
func Supervise(ctx context.Context, c *client.Client, o *Options, r *api.Rendered) (int, error) {
	path, err := exec.LookPath(o.Command[0])
	if err != nil {
		return 127, &Error{"starting " + o.Command[0], err}
	}
	cmd := exec.Command(path, o.Command[1:]...)
	cmd.Env = o.Env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		deliver.Wipe(o.Dir)
		return 127, &Error{"starting " + o.Command[0], err}
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go watch(wctx, c, o, r, func(sig syscall.Signal) { cmd.Process.Signal(sig) })
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGCHLD || s == syscall.SIGURG {
				continue
			}
			cmd.Process.Signal(s)
		case err := <-done:
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					return 128 + int(ws.Signal()), nil
				}
				return ee.ExitCode(), nil
			}
			if err != nil {
				return 1, err
			}
			return 0, nil
		}
	}
}

// watch applies rotations until ctx ends, reconnecting after errors.
func watch(ctx context.Context, c *client.Client, o *Options, r *api.Rendered, kill func(syscall.Signal)) {
	for ctx.Err() == nil {
		err := c.WatchProfile(ctx, o.Profile, func(api.Change) error {
			return refresh(ctx, c, o, r, kill)
		})
		if ctx.Err() != nil {
			return
		}
		fmt.Fprintf(o.Stderr, "privy exec: watching profile %q: %v; retrying\n", o.Profile, err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// refresh renders the profile again and replaces the files that changed.
func refresh(ctx context.Context, c *client.Client, o *Options, prev *api.Rendered, kill func(syscall.Signal)) error {
	r, err := c.Render(ctx, o.Profile, api.RenderRequest{})
	if err != nil {
		fmt.Fprintf(o.Stderr, "privy exec: refreshing profile %q: %v\n", o.Profile, err)
		return nil
	}
	defer clearRendered(r)
	old := map[string]int{}
	for _, f := range prev.Files {
		old[f.Name] = f.Version
	}
	changed := false
	for _, f := range r.Files {
		if v, ok := old[f.Name]; ok && v == f.Version {
			continue
		}
		err := deliver.Replace(o.Dir, deliver.File{Name: f.Name, Mode: fs.FileMode(f.Mode), UID: f.UID, GID: f.GID,
			Data: f.Value, Origin: "secret " + f.Secret})
		if err != nil {
			fmt.Fprintf(o.Stderr, "privy exec: %v\n", err)
			continue
		}
		changed = true
	}
	prev.Files = prev.Files[:0]
	for _, f := range r.Files {
		prev.Files = append(prev.Files, api.RenderedFile{Name: f.Name, Secret: f.Secret, Version: f.Version})
	}
	if changed && r.OnRotate != "" {
		if sig, err := profile.Signal(r.OnRotate); err == nil {
			kill(sig)
		}
	}
	return nil
}

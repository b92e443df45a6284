package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/privyhq/privy/client"
	"github.com/privyhq/privy/internal/build"
	"github.com/privyhq/privy/internal/paths"
)

const buildHelp = `Build an image with the real builder (docker with BuildKit, docker buildx,
podman or buildah), with the secrets its Dockerfile mounts taken from privy.

privy reads the Dockerfile with BuildKit's parser and resolves every
RUN --mount=type=secret id, in this order: --private id=ID,src=FILE; the
build: section of privy.yaml beside the Dockerfile; the host's private files
(/etc/privy/private.d/ID); a store secret whose path is the id. ssh ids
(RUN --mount=type=ssh) are served by an ssh-agent whose keys, named in
privy.yaml's build: ssh: section, never leave the server; every signature is
audited with the build's id. A required id that resolves nowhere stops the
build before the builder starts.

Values reach the builder only through its environment or a file on a private
tmpfs, never its arguments. Its output is shown with every value (and its
encodings) masked as ****. After the build, the guard scans the new image's
config, history and every layer for each delivered value; the image is only
tagged (-t) if none is found. On a leak privy exits with status 6 and leaves
the image untagged.

Every other argument is passed to the builder unchanged; the build context
comes last. privy's own flags:

      --private id=ID,src=FILE   a per-call file for secret id ID (repeatable)
      --builder NAME             docker, buildx, podman or buildah (default: detect)
      --manifest FILE            privy.yaml to use (default: beside the Dockerfile)
      --private-dir DIR          host private files (default /etc/privy/private.d,
                                 or $PRIVY_PRIVATE_DIR; "-" for none)
      --bust-cache-on-rotation   rerun the cached steps that mount a secret when its
                                 value changes (BuildKit leaves secrets out of its
                                 cache keys); see docs/build.md
      --no-guard                 skip the leak scan after the build
      --dry-run                  show where each id resolves, and do nothing else
      --addr, --token-file       how to reach the server, as for every command

The docker CLI is $PRIVY_DOCKER if set, else docker on PATH. With buildx,
choose the buildx builder instance with $BUILDX_BUILDER (privy's --builder
names the kind of builder).`

func (a *app) buildCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "build [privy flags] [builder flags] CONTEXT",
		Short: "Build an image with secrets from privy, masked output and a leak guard",
		Long:  buildHelp,
		Example: `  privy build -t myapp:1 .
  privy build -f docker/Dockerfile --builder podman -t myapp:1 .
  privy build --private id=npmrc,src=$HOME/.npmrc -t myapp:1 .
  privy build --dry-run .`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			o, help, err := a.buildOptions(args)
			if err != nil {
				return usageError{err}
			}
			if help {
				return cmd.Help()
			}
			return a.runBuild(cmd, o)
		},
	}
}

// buildOptions takes privy's own flags out of args; the rest go to the
// builder.
func (a *app) buildOptions(args []string) (build.Options, bool, error) {
	o := build.Options{
		PrivateDir:   os.Getenv("PRIVY_PRIVATE_DIR"),
		Docker:       os.Getenv("PRIVY_DOCKER"),
		CacheKeyFile: paths.BuildCacheKeyFile(),
	}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		name, value, hasValue := strings.Cut(arg, "=")
		takes := func() (string, error) {
			if hasValue {
				return value, nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("flag %s needs a value (see `privy build --help`)", name)
			}
			i++
			return args[i], nil
		}
		var err error
		switch name {
		case "-h", "--help":
			return o, true, nil
		case "--private":
			var v string
			if v, err = takes(); err == nil {
				var p build.Private
				if p, err = build.ParsePrivate(v); err == nil {
					o.Private = append(o.Private, p)
				}
			}
		case "--builder":
			o.Builder, err = takes()
		case "--manifest":
			o.Manifest, err = takes()
		case "--private-dir":
			o.PrivateDir, err = takes()
		case "--addr":
			a.addr, err = takes()
		case "--token-file":
			a.tokenFile, err = takes()
		case "--no-guard", "--dry-run", "--bust-cache-on-rotation":
			if hasValue {
				return o, false, fmt.Errorf("flag %s takes no value", name)
			}
			switch name {
			case "--no-guard":
				o.NoGuard = true
			case "--dry-run":
				o.DryRun = true
			default:
				o.BustCache = true
			}
		case "--":
			o.Args = append(o.Args, args[i:]...)
			i = len(args)
		default:
			o.Args = append(o.Args, arg)
		}
		if err != nil {
			return o, false, err
		}
	}
	return o, false, nil
}

func (a *app) runBuild(cmd *cobra.Command, o build.Options) error {
	tok, err := a.loadToken()
	if err != nil {
		return err
	}
	o.ID = build.NewID()
	if tok != "" {
		if o.Client, err = client.New(a.serverAddr(), client.WithToken(tok), client.WithBuildID(o.ID)); err != nil {
			return err
		}
	}
	o.Stdout, o.Stderr = a.stdout, a.stderr
	o.Environ = os.Environ()
	res, err := build.Run(cmd.Context(), o)
	if res != nil {
		a.buildReport(o, res)
	}
	return err
}

// buildReport tells the user, on stderr, where each id came from and what
// the guard did; with --dry-run the plan goes to stdout.
func (a *app) buildReport(o build.Options, res *build.Result) {
	w := a.stderr
	if o.DryRun {
		w = a.stdout
	}
	for _, u := range res.Warnings {
		fmt.Fprintf(a.stderr, "privy: warning: optional %s id %q resolves nowhere, so its mount is skipped: %s\n", u.Kind, u.ID, strings.Join(u.Looked, "; "))
	}
	if o.DryRun {
		for _, s := range res.Secrets {
			req := "optional"
			if s.Required {
				req = "required"
			}
			where := s.Where
			if s.Version > 0 {
				where = fmt.Sprintf("%s (version %d)", s.Where, s.Version)
			}
			fmt.Fprintf(w, "secret %-20s %s  <- %s %s\n", s.ID, req, s.From, where)
		}
		for _, s := range res.SSH {
			if s.From == build.FromArgs {
				fmt.Fprintf(w, "ssh    %-20s <- %s\n", s.ID, s.From)
				continue
			}
			for _, k := range s.Keys {
				fmt.Fprintf(w, "ssh    %-20s <- store key %s (%s)\n", s.ID, k.Path, k.Fingerprint)
			}
		}
		if len(res.Secrets) == 0 && len(res.SSH) == 0 {
			fmt.Fprintln(w, "the Dockerfile mounts no secrets and no ssh agents")
		}
		fmt.Fprintf(w, "builder: %s\n", res.Builder)
		return
	}
	for _, id := range res.Unguarded {
		fmt.Fprintf(a.stderr, "privy: warning: the guard could not look for %s (passed through, or shorter than 8 bytes)\n", id)
	}
	if res.ImageID == "" {
		return
	}
	switch {
	case len(res.Findings) > 0:
		// The LeakError says it.
	case o.NoGuard:
		fmt.Fprintf(a.stderr, "privy: built %s (guard skipped: --no-guard)\n", res.ImageID)
	default:
		fmt.Fprintf(a.stderr, "privy: built %s; guard: no delivered secret in the image (%d secrets checked in %.1fs, read from the %s)\n",
			res.ImageID, len(res.Secrets)-countFrom(res.Secrets, build.FromArgs), res.GuardTime.Seconds(), res.GuardRead)
	}
	for _, t := range res.Tags {
		if len(res.Findings) == 0 {
			fmt.Fprintf(a.stderr, "privy: tagged %s\n", t)
		}
	}
}

func countFrom(ss []*build.Secret, from string) int {
	n := 0
	for _, s := range ss {
		if s.From == from {
			n++
		}
	}
	return n
}

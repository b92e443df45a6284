package main

import (
	"errors"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/privyhq/privy/client"
	"github.com/privyhq/privy/internal/pexec"
	"github.com/privyhq/privy/internal/profile"
)

const execHelp = `Fetch a profile, place its files, then become COMMAND: an entrypoint for
images that get their secrets and configuration at every start.

privy exec renders PROFILE (with a token from --token-file, $PRIVY_TOKEN_FILE
or $PRIVY_TOKEN; with none, a container that has the privy socket mounted is
identified by its privy.profile label), wipes DIR, clones the profile's git
configuration repositories with a built-in git client (no git in the image),
decrypts their *.age files, writes every file into DIR (which must be a
tmpfs), runs the profile's post hook, and then replaces itself with COMMAND,
which becomes PID 1 and receives every signal. Any failure stops before
COMMAND starts, with a message naming what failed, and leaves DIR empty.

With --supervise privy exec stays as a minimal init instead: it forwards
signals to COMMAND, places rotated secrets atomically as they change, sends
the profile's on_rotate signal, and exits with COMMAND's status.

$PRIVY_TOKEN is removed from COMMAND's environment.`

func (a *app) execCommand() *cobra.Command {
	var o pexec.Options
	cmd := &cobra.Command{
		Use:   "exec --profile NAME [--dir DIR] [--supervise] -- COMMAND [ARG...]",
		Short: "Entrypoint: fetch a profile's files and git config onto a tmpfs, then run COMMAND",
		Long:  execHelp,
		Example: `  ENTRYPOINT ["/usr/local/bin/privy", "exec", "--profile", "dns", "--", "dnsmasq", "-k"]
  privy exec --profile web --dir /run/secrets --supervise -- /app/server`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Profile == "" {
				return usageError{errors.New("no --profile given: privy exec --profile NAME -- COMMAND")}
			}
			if err := profile.CheckName(o.Profile); err != nil {
				return usageError{err}
			}
			if len(args) == 0 {
				return usageError{errors.New("no command given: privy exec --profile NAME -- COMMAND [ARG...]")}
			}
			o.Command = args
			c, err := a.execClient()
			if err != nil {
				return err
			}
			o.Env = commandEnv(os.Environ())
			o.Stdout, o.Stderr = a.stdout, a.stderr
			r, err := pexec.Prepare(cmd.Context(), c, &o)
			if err != nil {
				return err
			}
			if !o.Supervise {
				return pexec.Exec(&o)
			}
			code, err := pexec.Supervise(cmd.Context(), c, &o, r)
			if err != nil {
				return err
			}
			if code != 0 {
				return exitStatus(code)
			}
			return nil
		},
	}
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().StringVar(&o.Profile, "profile", "", "the profile to fetch (required)")
	cmd.Flags().StringVar(&o.Dir, "dir", pexec.DefaultDir, "where to place the files; must be a tmpfs")
	cmd.Flags().BoolVar(&o.AllowDisk, "allow-disk", false, "accept a --dir that is not a tmpfs (the files then touch a disk)")
	cmd.Flags().BoolVar(&o.NoPost, "no-post", false, "skip the profile's post hook")
	cmd.Flags().BoolVar(&o.Supervise, "supervise", false, "stay as init: forward signals and apply rotations while COMMAND runs")
	return cmd
}

// execClient is the client privy exec uses: a token only if one is
// configured (none means peer identity).
func (a *app) execClient() (*client.Client, error) {
	if a.tokenFile == "" {
		a.tokenFile = os.Getenv("PRIVY_TOKEN_FILE")
	}
	tok, err := a.loadToken()
	if err != nil {
		return nil, err
	}
	return client.New(a.serverAddr(), client.WithToken(tok))
}

// commandEnv is the environment privy passes on: without its token.
func commandEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if strings.HasPrefix(kv, "PRIVY_TOKEN=") || strings.HasPrefix(kv, "PRIVY_MASTER_KEY=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// exitStatus makes privy exit with a supervised command's status.
type exitStatus int

func (e exitStatus) Error() string { return "command exited with status " + strconv.Itoa(int(e)) }

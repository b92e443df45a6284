package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/spf13/cobra"

	"github.com/privyhq/privy/client"
	"github.com/privyhq/privy/internal/build"
	"github.com/privyhq/privy/internal/pexec"
	"github.com/privyhq/privy/internal/seal"
	"github.com/privyhq/privy/internal/server"
	"github.com/privyhq/privy/internal/store"
	"github.com/privyhq/privy/internal/store/boltstore"
)

// Exit codes, documented in `privy help exit-codes`.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitNotFound    = 3
	exitDenied      = 4
	exitUnavailable = 5
	exitLeak        = 6
)

const exitCodesHelp = `Exit codes of privy commands:

  0  success
  1  failure not covered below (for example a malformed value or a server error)
  2  usage error: unknown command or flag, wrong number of arguments, bad flag value
  3  not found: no such secret, version or token
  4  denied: no token, an unknown, expired or used-up token, or a missing capability
  5  unavailable: the server cannot be reached, or its store is sealed
  6  leak: privy build's guard found a delivered secret in the built image
     (the image is left untagged)

privy scan follows scanner conventions instead: 0 clean, 1 findings, 2 error.

Errors are printed on stderr as "privy: error: ..." followed, where privy knows
what to do about it, by "privy: hint: ...". Results go to stdout.`

func exitCodesTopic() *cobra.Command {
	return &cobra.Command{
		Use:   "exit-codes",
		Short: "Exit codes of privy commands",
		Long:  exitCodesHelp,
	}
}

// report prints err with a hint and returns its exit code.
func (a *app) report(err error) int {
	var so *scanOutcome
	if errors.As(err, &so) {
		// privy scan: 1 means findings (already reported), 2 any error.
		if so.err == nil {
			return so.code
		}
		msg, hint, _ := a.explain(so.err)
		a.print(msg, hint)
		return so.code
	}
	var es exitStatus
	if errors.As(err, &es) {
		return int(es) // privy exec --supervise: the command's own status
	}
	msg, hint, code := a.explain(err)
	a.print(msg, hint)
	return code
}

func (a *app) print(msg, hint string) {
	fmt.Fprintf(a.stderr, "privy: error: %s\n", msg)
	if hint != "" {
		for _, l := range strings.Split(hint, "\n") {
			fmt.Fprintf(a.stderr, "privy: hint: %s\n", l)
		}
	}
}

// explain keeps in one place how known errors read and what the user should
// do about them.
func (a *app) explain(err error) (msg, hint string, code int) {
	var ue usageError
	var ce *client.ConnectError
	var ae *client.Error
	var ie *seal.InsecureFileError
	var leak *build.LeakError
	var unres *build.UnresolvedError
	var be *build.BuilderError
	var bae *build.ArgsError
	var pe *pexec.Error
	switch {
	case errors.As(err, &ue):
		return err.Error(), "", exitUsage
	case errors.As(err, &pe):
		// Name the stage that failed, with the hint and code of its cause.
		_, hint, code := a.explain(pe.Err)
		return err.Error(), hint, code
	case errors.As(err, &leak):
		return err.Error(), fmt.Sprintf("the image is kept, untagged, as %s for inspection: privy scan %s; remove it with docker image rm %s\nmount the secret instead of writing it to a file, or delete it in the same RUN step that creates it", leak.ImageID, leak.ImageID, leak.ImageID), exitLeak
	case errors.As(err, &unres):
		return err.Error(), "name each id in privy.yaml's build: section, store it with `privy secret put ID`, or pass --private id=ID,src=FILE (see `privy build --dry-run`)", exitNotFound
	case errors.As(err, &bae):
		return err.Error(), "usage: privy build [privy flags] [builder flags] CONTEXT (see `privy build --help`)", exitUsage
	case errors.As(err, &be):
		return err.Error(), "", exitFailure
	case errors.As(err, &ce):
		return err.Error(), "start it with `privy server` (after `privy init`), or point --addr / PRIVY_ADDR at a running one", exitUnavailable
	case errors.As(err, &ae):
		code := exitFailure
		switch {
		case errors.Is(ae, client.ErrNotFound):
			code = exitNotFound
		case errors.Is(ae, client.ErrUnauthenticated), errors.Is(ae, client.ErrPermissionDenied):
			code = exitDenied
		case errors.Is(ae, client.ErrSealed):
			code = exitUnavailable
		case errors.Is(ae, client.ErrInvalid):
			code = exitUsage
		}
		return ae.Message, ae.Hint, code
	case errors.As(err, &ie):
		return err.Error(), "", exitFailure
	case errors.Is(err, seal.ErrWrongKey):
		return err.Error(), "this is not the key (or passphrase) the store was initialised with", exitDenied
	case errors.Is(err, server.ErrNotInitialized):
		return err.Error(), "", exitFailure
	case errors.Is(err, server.ErrAlreadyInitialized):
		return err.Error(), "to start over, stop the server and remove the data directory (this destroys every secret)", exitFailure
	case errors.Is(err, boltstore.ErrLocked):
		return err.Error(), "", exitUnavailable
	case errors.Is(err, store.ErrInvalidPath):
		return err.Error(), "", exitUsage
	case errors.Is(err, errNoToken):
		return err.Error(), "set PRIVY_TOKEN, or run `privy login` and paste the token `privy init` printed", exitDenied
	case errors.Is(err, fs.ErrNotExist):
		return err.Error(), "", exitNotFound
	}
	return err.Error(), "", exitFailure
}

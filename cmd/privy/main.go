// Command privy gets secrets and private files into containers at build
// time and at run time without leaking them into images, logs or disks.
//
// This package is a thin adapter: each subcommand parses its flags and calls
// the client package or an internal package that does the work.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes the CLI and returns its exit code; only main calls os.Exit.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := app.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	return app.report(err)
}

// app holds what every subcommand shares: the I/O streams and the global
// flags that say how to reach the server.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	addr      string
	tokenFile string
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "privy",
		Short: "Secrets for containers, kept out of images, logs and disks",
		Long: `privy keeps secrets and private files in an encrypted store with access
control and a tamper-evident audit log, and delivers them to container
builds and containers without leaking them.

Start with:  privy init && privy server`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: false},
	}
	root.PersistentFlags().StringVar(&a.addr, "addr", "", "server address: socket path or https://host:port, or several separated by commas to fail over (default $PRIVY_ADDR or the local socket)")
	root.PersistentFlags().StringVar(&a.tokenFile, "token-file", "", "file holding the token (default $PRIVY_TOKEN, then the file `privy login` writes)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see `%s --help`)", err, c.CommandPath())}
	})
	root.AddCommand(
		a.initCommand(),
		a.serverCommand(),
		a.statusCommand(),
		a.unsealCommand(),
		a.loginCommand(),
		a.secretCommand(),
		a.tokenCommand(),
		a.auditCommand(),
		a.adminCommand(),
		a.scanCommand(),
		a.buildCommand(),
		a.profileCommand(),
		a.execCommand(),
		a.runCommand(),
		a.versionCommand(),
		exitCodesTopic(),
	)
	guardGroups(root)
	return root
}

// guardGroups makes every command group (a command with subcommands and no
// action of its own) treat an unknown subcommand as a usage error: left to
// cobra, the root fails with exit code 1 and `privy secret bogus` prints
// help and succeeds.
func guardGroups(c *cobra.Command) {
	if c.HasSubCommands() && !c.Runnable() {
		c.Args = unknownSubcommand
		c.RunE = func(cmd *cobra.Command, args []string) error { return cmd.Help() }
	}
	for _, sub := range c.Commands() {
		guardGroups(sub)
	}
}

func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's default, set lazily
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	return usageError{fmt.Errorf("%s (see `%s --help`)", msg, cmd.CommandPath())}
}

// usageError marks errors in how the command was called (exit code 2).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// args checks the number of positional arguments with a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%s takes %d argument(s), got %d (usage: %s)", cmd.CommandPath(), n, len(args), cmd.UseLine())}
		}
		return nil
	}
}

func maxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return usageError{fmt.Errorf("%s takes at most %d argument(s), got %d (usage: %s)", cmd.CommandPath(), n, len(args), cmd.UseLine())}
		}
		return nil
	}
}

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/privyhq/privy/internal/store"
)

func (a *app) secretCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Store, read, list and remove secrets",
	}
	cmd.AddCommand(a.secretPut(), a.secretGet(), a.secretLs(), a.secretHistory(), a.secretRm())
	return cmd
}

func (a *app) secretPut() *cobra.Command {
	var file, fromEnv string
	cmd := &cobra.Command{
		Use:   "put PATH",
		Short: "Store a new version of a secret (value from stdin, --file or --from-env; never argv)",
		Example: `  privy secret put app/web/db-password < password.txt
  privy secret put app/web/tls-key --file tls.key
  privy secret put ci/deploy-token --from-env DEPLOY_TOKEN`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			if err := store.ValidatePath(path); err != nil {
				return usageError{err}
			}
			value, err := a.readValue(file, fromEnv)
			if err != nil {
				return err
			}
			defer clear(value)
			c, err := a.client(true)
			if err != nil {
				return err
			}
			m, err := c.PutSecret(cmd.Context(), path, value)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s version %d\n", m.Path, m.Version)
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "read the value from this file")
	cmd.Flags().StringVar(&fromEnv, "from-env", "", "read the value from this environment variable")
	return cmd
}

// readValue reads a secret value from exactly one source. A terminal on
// stdin is read without echo.
func (a *app) readValue(file, fromEnv string) ([]byte, error) {
	switch {
	case file != "" && fromEnv != "":
		return nil, usageError{errors.New("give either --file or --from-env, not both")}
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("reading value: %w", err)
		}
		return b, nil
	case fromEnv != "":
		v, ok := os.LookupEnv(fromEnv)
		if !ok {
			return nil, usageError{fmt.Errorf("environment variable %s is not set", fromEnv)}
		}
		return []byte(v), nil
	}
	if f, ok := a.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(a.stderr, "Value (not echoed): ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.stderr)
		if err != nil {
			return nil, fmt.Errorf("reading value from the terminal: %w", err)
		}
		return b, nil
	}
	b, err := io.ReadAll(io.LimitReader(a.stdin, 64<<20+1))
	if err != nil {
		return nil, fmt.Errorf("reading value from stdin: %w", err)
	}
	return b, nil
}

func (a *app) secretGet() *cobra.Command {
	var version int
	var out string
	cmd := &cobra.Command{
		Use:   "get PATH",
		Short: "Print a secret's value (raw bytes) on stdout, or write it to a file",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := store.ValidatePath(args[0]); err != nil {
				return usageError{err}
			}
			if version < 0 {
				return usageError{errors.New("--version must be 1 or more")}
			}
			c, err := a.client(true)
			if err != nil {
				return err
			}
			s, err := c.GetSecret(cmd.Context(), args[0], version)
			if err != nil {
				return err
			}
			defer clear(s.Value)
			if out != "" {
				return writeSecretFile(out, s.Value)
			}
			_, err = a.stdout.Write(s.Value)
			return err
		},
	}
	cmd.Flags().IntVar(&version, "version", 0, "read this version instead of the latest")
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the value to this file (mode 0600) instead of stdout")
	return cmd
}

// writeSecretFile writes a value to a new file that only its owner can read.
func writeSecretFile(path string, value []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("writing value: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("writing value: %w", err)
	}
	if _, err := f.Write(value); err != nil {
		f.Close()
		return fmt.Errorf("writing value: %w", err)
	}
	return f.Close()
}

func (a *app) secretLs() *cobra.Command {
	f := format("table")
	cmd := &cobra.Command{
		Use:     "ls [PREFIX]",
		Aliases: []string{"list"},
		Short:   "List the secrets under a prefix that your token may list",
		Args:    maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			prefix := ""
			if len(args) == 1 {
				prefix = args[0]
			}
			c, err := a.client(true)
			if err != nil {
				return err
			}
			list, err := c.ListSecrets(cmd.Context(), prefix)
			if err != nil {
				return err
			}
			if f == "json" {
				return writeJSONOut(a.stdout, list)
			}
			tw := newTable(a.stdout)
			fmt.Fprintln(tw, "PATH\tVERSION\tCREATED")
			for _, m := range list {
				fmt.Fprintf(tw, "%s\t%d\t%s\n", m.Path, m.Version, m.Created.Local().Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().Var(&f, "format", "output format: table or json")
	return cmd
}

func (a *app) secretHistory() *cobra.Command {
	f := format("table")
	cmd := &cobra.Command{
		Use:   "history PATH",
		Short: "List the kept versions of a secret",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := store.ValidatePath(args[0]); err != nil {
				return usageError{err}
			}
			c, err := a.client(true)
			if err != nil {
				return err
			}
			vs, err := c.History(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if f == "json" {
				return writeJSONOut(a.stdout, vs)
			}
			tw := newTable(a.stdout)
			fmt.Fprintln(tw, "VERSION\tCREATED")
			for _, v := range vs {
				fmt.Fprintf(tw, "%d\t%s\n", v.Version, v.Created.Local().Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().Var(&f, "format", "output format: table or json")
	return cmd
}

func (a *app) secretRm() *cobra.Command {
	var destroy bool
	cmd := &cobra.Command{
		Use:   "rm PATH",
		Short: "Hide a secret (its versions are kept), or erase every version with --destroy",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := store.ValidatePath(args[0]); err != nil {
				return usageError{err}
			}
			c, err := a.client(true)
			if err != nil {
				return err
			}
			if err := c.DeleteSecret(cmd.Context(), args[0], destroy); err != nil {
				return err
			}
			verb := "hidden"
			if destroy {
				verb = "destroyed"
			}
			fmt.Fprintf(a.stdout, "%s %s\n", args[0], verb)
			return nil
		},
	}
	cmd.Flags().BoolVar(&destroy, "destroy", false, "erase every version for good")
	return cmd
}

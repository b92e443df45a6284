package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/paths"
	"github.com/privyhq/privy/internal/seal"
	"github.com/privyhq/privy/internal/server"
)

func (a *app) statusCommand() *cobra.Command {
	f := format("table")
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Is the server reachable? Is its store sealed? Which version?",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(false)
			if err != nil {
				return err
			}
			s, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			if f == "json" {
				return writeJSONOut(a.stdout, s)
			}
			state := "unsealed"
			if s.Sealed {
				state = "sealed (run `privy unseal`)"
			}
			fmt.Fprintf(a.stdout, "server   %s\nversion  %s\nstore    %s\nstate    %s\n", c.Addr(), s.Version, s.Store, state)
			if s.KeySource != "" {
				fmt.Fprintf(a.stdout, "key      %s\n", s.KeySource)
			}
			return nil
		},
	}
	cmd.Flags().Var(&f, "format", "output format: table or json")
	return cmd
}

func (a *app) unsealCommand() *cobra.Command {
	var ko keyOptions
	cmd := &cobra.Command{
		Use:   "unseal",
		Short: "Give a sealed server its master key (key file, passphrase file, or prompt)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			var req api.UnsealRequest
			switch {
			case ko.keyFile != "":
				raw, err := seal.ReadKeyFile(ko.keyFile)
				if err != nil {
					return err
				}
				req.Key = seal.EncodeKey(raw)
				clear(raw)
			case ko.passphraseFile != "":
				p, err := seal.ReadPassphraseFile(ko.passphraseFile)
				if err != nil {
					return err
				}
				req.Passphrase = string(p)
				clear(p)
			default:
				p, err := seal.PromptPassphrase("Passphrase for the privy store: ", false)
				if err != nil {
					return err
				}
				req.Passphrase = string(p)
				clear(p)
			}
			c, err := a.client(false)
			if err != nil {
				return err
			}
			if _, err := c.Unseal(cmd.Context(), req); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, "unsealed")
			return nil
		},
	}
	ko.register(cmd)
	return cmd
}

func (a *app) loginCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "login",
		Short: "Save a token (read from stdin) for later commands, checking it first",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := a.readValue("", "")
			if err != nil {
				return err
			}
			tok := strings.TrimSpace(string(b))
			if tok == "" {
				return usageError{errors.New("no token on stdin")}
			}
			// Not a.client: the token file being replaced may be unreadable.
			c, err := clientWithToken(a.serverAddr(), tok)
			if err != nil {
				return err
			}
			info, err := c.TokenSelf(cmd.Context())
			if err != nil {
				return err
			}
			f := a.tokenFile
			if f == "" {
				f = paths.TokenFile()
			}
			if err := writeTokenFile(f, tok); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "logged in as %s; token saved to %s\n", info.Accessor, f)
			return nil
		},
	}
}

func (a *app) adminCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Administer the server's master key",
	}
	var newKeyFile, newPassFile string
	rotate := &cobra.Command{
		Use:   "rotate-master-key",
		Short: "Replace the master key, rewrapping every data key (values are not re-encrypted)",
		Long: `Replace the master key. Every version's data key is rewrapped under the new
key; values are not touched. A server whose key is a key file writes the new
key to that file. One unsealed from PRIVY_MASTER_KEY needs --new-key-file
(make one with: head -c 32 /dev/urandom | base64 > F; chmod 600 F), and one
unsealed by passphrase needs --new-passphrase-file.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			var req api.RotateRequest
			if newKeyFile != "" {
				raw, err := seal.ReadKeyFile(newKeyFile)
				if err != nil {
					return err
				}
				req.NewKey = seal.EncodeKey(raw)
				clear(raw)
			}
			if newPassFile != "" {
				p, err := seal.ReadPassphraseFile(newPassFile)
				if err != nil {
					return err
				}
				req.NewPassphrase = string(p)
			}
			c, err := a.client(true)
			if err != nil {
				return err
			}
			r, err := c.RotateMasterKey(cmd.Context(), req)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "master key rotated: new key id %s, %d data keys rewrapped\n", r.KeyID, r.Rewrapped)
			if r.KeyFile != "" {
				fmt.Fprintf(a.stderr, "privy: the new key is in %s; back it up and discard old copies\n", r.KeyFile)
			}
			return nil
		},
	}
	rotate.Flags().StringVar(&newKeyFile, "new-key-file", "", "the new master key (base64 of 32 bytes, mode 0600)")
	rotate.Flags().StringVar(&newPassFile, "new-passphrase-file", "", "derive the new master key from this passphrase")
	cmd.AddCommand(rotate)
	return cmd
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print privy's version",
		Args:  exactArgs(0),
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Fprintf(a.stdout, "privy %s\n", server.Version)
		},
	}
}

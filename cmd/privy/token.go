package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/policy"
)

func (a *app) tokenCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke tokens",
	}
	cmd.AddCommand(a.tokenCreate(), a.tokenLs(), a.tokenRevoke(), a.tokenSelf())
	return cmd
}

func (a *app) tokenCreate() *cobra.Command {
	var rules []string
	var name string
	var ttl time.Duration
	var uses int
	f := format("table")
	cmd := &cobra.Command{
		Use:   "create --allow CAPS:GLOB [--allow ...]",
		Short: "Create a token; it is printed once and stored only as a hash",
		Example: `  privy token create --allow 'read:app/web/**' --allow 'list:app/**'
  privy token create --allow 'read:ci/**' --ttl 1h --uses 1 --format json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(rules) == 0 {
				return usageError{errors.New("no --allow rule given; a token must be allowed something, e.g. --allow 'read:app/**'")}
			}
			// Check the rules here too, so a typo is a usage error before
			// anything is sent.
			if _, err := policy.ParsePolicy(rules); err != nil {
				return usageError{err}
			}
			if ttl < 0 || uses < 0 {
				return usageError{errors.New("--ttl and --uses must not be negative")}
			}
			c, err := a.client(true)
			if err != nil {
				return err
			}
			req := api.CreateTokenRequest{Name: name, Rules: rules, Uses: uses}
			if ttl > 0 {
				req.TTL = ttl.String()
			}
			t, err := c.CreateToken(cmd.Context(), req)
			if err != nil {
				return err
			}
			if f == "json" {
				return writeJSONOut(a.stdout, t)
			}
			fmt.Fprintln(a.stdout, t.Token)
			fmt.Fprintf(a.stderr, "privy: accessor %s (safe to share; use it to revoke). The token is not shown again.\n", t.Accessor)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&rules, "allow", nil, "a rule CAPS:GLOB, e.g. read,list:app/** (repeatable); caps: read, list, write, delete, admin")
	cmd.Flags().StringVar(&name, "name", "", "a name to recognise the token by")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "expire the token after this long (e.g. 1h)")
	cmd.Flags().IntVar(&uses, "uses", 0, "allow only this many requests (0 = unlimited)")
	cmd.Flags().Var(&f, "format", "output format: table or json")
	return cmd
}

func (a *app) tokenLs() *cobra.Command {
	f := format("table")
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List live tokens (accessors and rules, never the tokens)",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(true)
			if err != nil {
				return err
			}
			ts, err := c.ListTokens(cmd.Context())
			if err != nil {
				return err
			}
			if f == "json" {
				return writeJSONOut(a.stdout, ts)
			}
			tw := newTable(a.stdout)
			fmt.Fprintln(tw, "ACCESSOR\tNAME\tRULES\tEXPIRES\tUSES LEFT")
			for _, t := range ts {
				exp, left := "never", "unlimited"
				if t.Expires != nil {
					exp = t.Expires.Local().Format(time.RFC3339)
				}
				if t.UsesLeft != nil {
					left = fmt.Sprint(*t.UsesLeft)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Accessor, t.Name, strings.Join(t.Rules, " "), exp, left)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().Var(&f, "format", "output format: table or json")
	return cmd
}

func (a *app) tokenRevoke() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ACCESSOR",
		Short: "Revoke a token at once",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(true)
			if err != nil {
				return err
			}
			if err := c.RevokeToken(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s revoked\n", args[0])
			return nil
		},
	}
}

func (a *app) tokenSelf() *cobra.Command {
	f := format("table")
	cmd := &cobra.Command{
		Use:   "self",
		Short: "Show your own token's accessor and rules",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(true)
			if err != nil {
				return err
			}
			t, err := c.TokenSelf(cmd.Context())
			if err != nil {
				return err
			}
			if f == "json" {
				return writeJSONOut(a.stdout, t)
			}
			fmt.Fprintf(a.stdout, "accessor %s\nrules    %s\n", t.Accessor, strings.Join(t.Rules, " "))
			return nil
		},
	}
	cmd.Flags().Var(&f, "format", "output format: table or json")
	return cmd
}

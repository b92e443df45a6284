package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/privyhq/privy/internal/audit"
)

func (a *app) auditCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read and verify the hash-chained audit log",
	}
	cmd.AddCommand(a.auditTail(), a.auditVerify())
	return cmd
}

func (a *app) auditTail() *cobra.Command {
	var n int
	var follow bool
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print the last audit lines (JSON), and with -f new ones as they come",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if n < 0 {
				return usageError{errors.New("-n must be 0 or more")}
			}
			c, err := a.client(true)
			if err != nil {
				return err
			}
			err = c.AuditTail(cmd.Context(), n, follow, func(line []byte) error {
				_, err := a.stdout.Write(append(line, '\n'))
				return err
			})
			if follow && errors.Is(err, cmd.Context().Err()) {
				return nil // interrupted by the user
			}
			return err
		},
	}
	cmd.Flags().IntVarP(&n, "lines", "n", 20, "how many of the last lines to print")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until interrupted")
	return cmd
}

func (a *app) auditVerify() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit log's hash chain and name the first broken line",
		Long: `Check the audit log's hash chain: every line must carry the SHA-256 of the
line before it and the next sequence number. Asks the server, or with --file
reads a copy of the log directly (no server needed).`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file != "" {
				f, err := os.Open(file)
				if err != nil {
					return fmt.Errorf("opening audit log: %w", err)
				}
				defer f.Close()
				sum, err := audit.Verify(f)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "audit log intact: %d lines, last seq %d, head %s\n", sum.Lines, sum.LastSeq, sum.Head)
				return nil
			}
			c, err := a.client(true)
			if err != nil {
				return err
			}
			r, err := c.AuditVerify(cmd.Context())
			if err != nil {
				return err
			}
			if !r.OK {
				return errors.New(r.Error)
			}
			fmt.Fprintf(a.stdout, "audit log intact: %d lines, last seq %d, head %s\n", r.Lines, r.LastSeq, r.Head)
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "verify this audit log file instead of asking the server")
	return cmd
}

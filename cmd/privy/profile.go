package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/manifest"
	"github.com/privyhq/privy/internal/profile"
)

func (a *app) profileCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "profile",
		Short: "Store and inspect run-time profiles: what each kind of container receives",
	}
	cmd.AddCommand(a.profileApply(), a.profilePut(), a.profileGet(), a.profileLs(), a.profileRm())
	return cmd
}

func (a *app) profileApply() *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "apply [privy.yaml]",
		Short: "Store every profile of a manifest's run: section (a new version of each that changed)",
		Example: `  privy profile apply privy.yaml
  privy profile apply --dry-run`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := "privy.yaml"
			if len(args) == 1 {
				file = args[0]
			}
			m, err := manifest.Load(file)
			if err != nil {
				return err
			}
			if m.Run == nil || len(m.Run.Profiles) == 0 {
				return fmt.Errorf("%s has no run: profiles to apply; see docs/manifest.md", file)
			}
			if dryRun {
				for _, p := range m.Run.Profiles {
					fmt.Fprintf(a.stdout, "profile %s: %s\n", p.Name, describeProfile(p))
				}
				return nil
			}
			// Check every profile as the server will before storing any,
			// so that a bad one does not leave the others half applied.
			for _, p := range m.Run.Profiles {
				if err := profile.Validate(p); err != nil {
					return fmt.Errorf("%s: %w (nothing was applied)", file, err)
				}
			}
			c, err := a.client(true)
			if err != nil {
				return err
			}
			for _, p := range m.Run.Profiles {
				cur, err := c.GetProfile(cmd.Context(), p.Name, 0)
				if err == nil && sameProfile(*cur, p) {
					fmt.Fprintf(a.stdout, "profile %s: unchanged (version %d)\n", p.Name, cur.Version)
					continue
				}
				stored, err := c.PutProfile(cmd.Context(), p)
				if err != nil {
					return fmt.Errorf("profile %s: %w", p.Name, err)
				}
				fmt.Fprintf(a.stdout, "profile %s: version %d\n", p.Name, stored.Version)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "check the manifest and show the profiles without storing them")
	return cmd
}

// sameProfile compares definitions, ignoring what the server sets.
func sameProfile(a, b api.Profile) bool {
	a.Version, a.Updated, b.Version, b.Updated = 0, time.Time{}, 0, time.Time{}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func describeProfile(p api.Profile) string {
	var parts []string
	if n := len(p.Files); n > 0 {
		parts = append(parts, fmt.Sprintf("%d files", n))
	}
	if n := len(p.Prefixes); n > 0 {
		parts = append(parts, fmt.Sprintf("%d prefixes", n))
	}
	if n := len(p.Repos); n > 0 {
		parts = append(parts, fmt.Sprintf("%d repos", n))
	}
	if p.HostPrivate {
		parts = append(parts, "host private files")
	}
	if p.OnRotate != "" {
		parts = append(parts, "on rotation "+p.OnRotate)
	}
	return strings.Join(parts, ", ")
}

func (a *app) profilePut() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:     "put NAME --file PROFILE.json",
		Short:   "Store a profile given as JSON (the API's format; see docs/api.md)",
		Example: `  privy profile put web --file web.json`,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return usageError{errors.New("no --file given: privy profile put NAME --file PROFILE.json (or `-` for standard input)")}
			}
			var b []byte
			var err error
			if file == "-" {
				b, err = io.ReadAll(io.LimitReader(a.stdin, 1<<20))
			} else {
				b, err = os.ReadFile(file)
			}
			if err != nil {
				return fmt.Errorf("reading profile: %w", err)
			}
			var p api.Profile
			dec := json.NewDecoder(strings.NewReader(string(b)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&p); err != nil {
				return fmt.Errorf("%s: not a profile in JSON: %v (see docs/api.md)", filepath.Base(file), err)
			}
			if p.Name == "" {
				p.Name = args[0]
			}
			if p.Name != args[0] {
				return usageError{fmt.Errorf("the file names profile %q, not %q", p.Name, args[0])}
			}
			if err := profile.Validate(p); err != nil {
				return err
			}
			c, err := a.client(true)
			if err != nil {
				return err
			}
			stored, err := c.PutProfile(cmd.Context(), p)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "profile %s: version %d\n", stored.Name, stored.Version)
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "JSON file holding the profile, or - for standard input")
	return cmd
}

func (a *app) profileGet() *cobra.Command {
	var version int
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a profile's definition (store paths, never values) as JSON",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(true)
			if err != nil {
				return err
			}
			p, err := c.GetProfile(cmd.Context(), args[0], version)
			if err != nil {
				return err
			}
			return writeJSONOut(a.stdout, p)
		},
	}
	cmd.Flags().IntVar(&version, "version", 0, "show this version instead of the current one")
	return cmd
}

func (a *app) profileLs() *cobra.Command {
	f := format("table")
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List profiles",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(true)
			if err != nil {
				return err
			}
			ps, err := c.ListProfiles(cmd.Context())
			if err != nil {
				return err
			}
			if f == "json" {
				return writeJSONOut(a.stdout, ps)
			}
			tw := newTable(a.stdout)
			fmt.Fprintln(tw, "NAME\tVERSION\tUPDATED\tDELIVERS")
			for _, p := range ps {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", p.Name, p.Version, p.Updated.Format("2006-01-02 15:04:05"), describeProfile(p))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().Var(&f, "format", "output format: table or json")
	return cmd
}

func (a *app) profileRm() *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a profile (its versions stay recorded; live mounts keep their files)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(true)
			if err != nil {
				return err
			}
			if err := c.DeleteProfile(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "profile %s: removed\n", args[0])
			return nil
		},
	}
}

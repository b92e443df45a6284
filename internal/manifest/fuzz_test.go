package manifest_test

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/deliver"
	"github.com/privyhq/privy/internal/manifest"
	"github.com/privyhq/privy/internal/profile"
	"github.com/privyhq/privy/internal/store"
)

// FuzzParse checks that Parse never panics, that every error it returns is
// a *manifest.Error for the manifest, and that what it accepts keeps the
// promises of the format.
func FuzzParse(f *testing.F) {
	for _, tt := range parseTests {
		f.Add([]byte(tt.in))
	}
	for _, tt := range errorTests {
		f.Add([]byte(tt.in))
	}
	for _, tt := range agreementTests {
		f.Add([]byte(tt.in))
	}
	for _, tt := range runParseTests {
		f.Add([]byte(tt.in))
	}
	for _, tt := range runErrorTests {
		f.Add([]byte(tt.in))
	}
	for _, tt := range runAgreementTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "/proj/privy.yaml"
		m, err := manifest.Parse(name, data)
		if err != nil {
			var me *manifest.Error
			if !errors.As(err, &me) || me.File != name || me.Line < 0 || me.Col < 0 || me.Msg == "" {
				t.Fatalf("got error %#v (%v), want a *manifest.Error for %s", err, err, name)
			}
			return
		}
		for id, src := range m.Build.Secrets {
			checkID(t, id)
			set := 0
			for _, s := range []string{src.Store, src.File, src.Env} {
				if s != "" {
					set++
				}
			}
			switch {
			case set != 1:
				t.Errorf("secret %q: got %+v, want exactly one of Store, File, Env", id, src)
			case src.Store != "":
				checkPath(t, src.Store)
			case src.File != "" && !filepath.IsAbs(src.File):
				t.Errorf("secret %q: got relative file %q", id, src.File)
			case src.Env != "" && strings.ContainsFunc(src.Env, func(r rune) bool { return r != '_' && !isASCIIAlnum(r) }):
				t.Errorf("secret %q: got env %q", id, src.Env)
			}
			if src.Line < 1 {
				t.Errorf("secret %q: got line %d", id, src.Line)
			}
		}
		for id, keys := range m.Build.SSH {
			checkID(t, id)
			if len(keys) == 0 {
				t.Errorf("ssh %q: got no keys", id)
			}
			for _, k := range keys {
				checkPath(t, k.Store)
			}
		}
		if m.Run != nil {
			checkRun(t, m.Run)
		}
	})
}

// checkRun checks the promises of a parsed run: section: sorted, valid
// profiles that the server's check accepts.
func checkRun(t *testing.T, r *manifest.Run) {
	t.Helper()
	if !slices.IsSortedFunc(r.Profiles, func(a, b api.Profile) int { return strings.Compare(a.Name, b.Name) }) {
		t.Errorf("profiles not sorted by name")
	}
	for _, p := range r.Profiles {
		if len(p.Files)+len(p.Prefixes)+len(p.Repos) == 0 && !p.HostPrivate {
			t.Errorf("profile %q delivers nothing", p.Name)
		}
		for _, f := range p.Files {
			checkOwner(t, f.Owner)
			if err := deliver.CheckName(f.Name); err != nil {
				t.Errorf("profile %q: accepted file name: %v", p.Name, err)
			}
		}
		for _, x := range p.Prefixes {
			checkOwner(t, x.Owner)
		}
		plainHTTP := false
		for _, x := range p.Repos {
			checkOwner(t, x.Owner)
			plainHTTP = plainHTTP || strings.HasPrefix(x.URL, "http://")
			for _, f := range x.Files {
				if f.Mode > 0o777 {
					t.Errorf("profile %q: accepted mode %#o", p.Name, f.Mode)
				}
			}
		}
		if p.OnRotate != "" && !strings.HasPrefix(p.OnRotate, "SIG") {
			t.Errorf("profile %q: on_rotate %q not normalised", p.Name, p.OnRotate)
		}
		// http:// is refused for a host that is not a loopback one only
		// when the profile is stored.
		if err := profile.Validate(p); err != nil && !plainHTTP {
			t.Errorf("profile.Validate of an accepted profile: %v", err)
		}
	}
}

func checkOwner(t *testing.T, o api.Owner) {
	t.Helper()
	if o.Mode > 0o777 {
		t.Errorf("accepted mode %#o", o.Mode)
	}
	for _, id := range []*int{o.UID, o.GID} {
		if id != nil && (*id < 0 || *id > 1<<31-1) {
			t.Errorf("accepted id %d", *id)
		}
	}
}

func checkID(t *testing.T, id string) {
	t.Helper()
	if id == "" || strings.ContainsAny(id, `,="`) || strings.ContainsFunc(id, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		t.Errorf("accepted id %q", id)
	}
}

func checkPath(t *testing.T, p string) {
	t.Helper()
	if err := store.ValidatePath(p); err != nil {
		t.Errorf("accepted store path %q: %v", p, err)
	}
}

func isASCIIAlnum(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
}

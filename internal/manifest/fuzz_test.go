package manifest_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/privyhq/privy/internal/manifest"
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
	})
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

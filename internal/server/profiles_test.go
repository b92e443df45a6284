package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/client"
	"github.com/privyhq/privy/internal/audit"
	"github.com/privyhq/privy/internal/server"
	"github.com/privyhq/privy/internal/servertest"
	"github.com/privyhq/privy/internal/store"
	"github.com/privyhq/privy/internal/token"
)

func intp(i int) *int { return &i }

// secrets makes recognisable secret values and remembers them, so that a
// test can prove none reached the audit log or an error text.
type secrets struct{ all [][]byte }

func (s *secrets) value(label string) []byte {
	b := make([]byte, 8)
	rand.Read(b)
	v := []byte("s3cret-" + label + "-" + hex.EncodeToString(b))
	s.all = append(s.all, v)
	hygiene.addValue(v)
	return v
}

// checkAuditClean fails the test if the audit log holds any value.
func (s *secrets) checkAuditClean(t *testing.T, st *servertest.Server) {
	t.Helper()
	b, err := os.ReadFile(st.AuditPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range s.all {
		if bytes.Contains(b, v) {
			t.Errorf("the audit log holds the secret value %q", v)
		}
	}
}

// wantClientErr checks that err is a *client.Error matching want and
// returns it; its texts join the run's leak check.
func wantClientErr(t *testing.T, what string, err, want error) *client.Error {
	t.Helper()
	var ce *client.Error
	if !errors.As(err, &ce) || !errors.Is(err, want) {
		t.Fatalf("%s: got error %v (%T), want %v", what, err, err, want)
	}
	hygiene.addText(ce.Message, ce.Hint)
	return ce
}

func wantContains(t *testing.T, what, got string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(got, p) {
			t.Errorf("%s = %q, want it to contain %q", what, got, p)
		}
	}
}

func putProfile(t *testing.T, c *client.Client, p api.Profile) *api.Profile {
	t.Helper()
	got, err := c.PutProfile(context.Background(), p)
	if err != nil {
		t.Fatalf("PutProfile(%q): %v", p.Name, err)
	}
	return got
}

// linesOf returns the audit lines of op, and those of the request id of
// the last of them.
func linesOf(entries []audit.Entry, op string) (ofOp, ofRequest []audit.Entry) {
	for _, e := range entries {
		if e.Op == op {
			ofOp = append(ofOp, e)
		}
	}
	if len(ofOp) == 0 {
		return nil, nil
	}
	id := ofOp[len(ofOp)-1].RequestID
	for _, e := range entries {
		if e.RequestID == id {
			ofRequest = append(ofRequest, e)
		}
	}
	return ofOp, ofRequest
}

// checkReads checks that the request's secret.read lines are want (path
// → version), by actor, for profile.
func checkReads(t *testing.T, lines []audit.Entry, actor, profile string, want map[string]int) {
	t.Helper()
	got := map[string]int{}
	for _, e := range lines {
		if e.Op != "secret.read" {
			continue
		}
		if _, dup := got[e.Path]; dup {
			t.Errorf("secret %q read twice in one render", e.Path)
		}
		got[e.Path] = e.Version
		if e.Actor != actor || e.Outcome != audit.OutcomeOK || e.Extra["profile"] != profile {
			t.Errorf("read of %q: actor %q outcome %q extra %v, want %q ok profile=%s", e.Path, e.Actor, e.Outcome, e.Extra, actor, profile)
		}
	}
	if !mapsEqual(got, want) {
		t.Errorf("secret.read lines = %v, want %v", got, want)
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// checkFiles compares rendered files with want, values included.
func checkFiles(t *testing.T, got, want []api.RenderedFile) {
	t.Helper()
	if len(got) != len(want) {
		names := []string{}
		for _, f := range got {
			names = append(names, f.Name)
		}
		t.Fatalf("rendered %d files %q, want %d", len(got), names, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Name != w.Name || g.Secret != w.Secret || g.Version != w.Version || g.Mode != w.Mode || g.UID != w.UID || g.GID != w.GID {
			t.Errorf("file %d = %q from %q v%d mode %#o %d:%d, want %q from %q v%d mode %#o %d:%d", i,
				g.Name, g.Secret, g.Version, g.Mode, g.UID, g.GID, w.Name, w.Secret, w.Version, w.Mode, w.UID, w.GID)
		}
		if !bytes.Equal(g.Value, w.Value) {
			t.Errorf("file %q has the wrong value", g.Name)
		}
	}
}

func TestProfileVersions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := servertest.Start(t)
	admin := st.Client(t, st.Root)

	one := api.Profile{Name: "web", Files: []api.ProfileFile{{Name: "db", Secret: "app/db"}}}
	two := api.Profile{Name: "web", Files: []api.ProfileFile{{Name: "db", Secret: "app/db"}, {Name: "tls", Secret: "app/tls"}}, OnRotate: "SIGHUP"}
	if got := putProfile(t, admin, one); got.Version != 1 || got.Updated.IsZero() || got.Name != "web" {
		t.Errorf("first put = v%d %q updated %v, want v1 web with a time", got.Version, got.Name, got.Updated)
	}
	if got := putProfile(t, admin, two); got.Version != 2 {
		t.Errorf("second put = v%d, want v2", got.Version)
	}
	putProfile(t, admin, api.Profile{Name: "api", HostPrivate: true})

	cur, err := admin.GetProfile(ctx, "web", 0)
	if err != nil {
		t.Fatal(err)
	}
	if cur.Version != 2 || len(cur.Files) != 2 || cur.OnRotate != "SIGHUP" {
		t.Errorf("current = v%d %d files on_rotate %q, want v2, 2 files, SIGHUP", cur.Version, len(cur.Files), cur.OnRotate)
	}
	old, err := admin.GetProfile(ctx, "web", 1)
	if err != nil {
		t.Fatal(err)
	}
	if old.Version != 1 || len(old.Files) != 1 || old.OnRotate != "" {
		t.Errorf("version 1 = v%d %d files on_rotate %q, want v1, 1 file, none", old.Version, len(old.Files), old.OnRotate)
	}
	_, err = admin.GetProfile(ctx, "web", 3)
	ce := wantClientErr(t, "get version 3", err, client.ErrNotFound)
	wantContains(t, "get version 3", ce.Message, "no version 3", `"web"`)

	list, err := admin.ListProfiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "api" || list[1].Name != "web" || list[1].Version != 2 {
		t.Errorf("list = %+v, want api v1 and web v2", list)
	}

	if err := admin.DeleteProfile(ctx, "web"); err != nil {
		t.Fatalf("DeleteProfile: %v", err)
	}
	_, err = admin.GetProfile(ctx, "web", 0)
	ce = wantClientErr(t, "get after delete", err, client.ErrNotFound)
	if ce.Status != 404 {
		t.Errorf("get after delete: status %d, want 404", ce.Status)
	}
	wantContains(t, "get after delete", ce.Message, `"web"`)
	ce = wantClientErr(t, "delete again", admin.DeleteProfile(ctx, "web"), client.ErrNotFound)
	wantContains(t, "delete again", ce.Message, `"web"`)
	if list, _ := admin.ListProfiles(ctx); len(list) != 1 || list[0].Name != "api" {
		t.Errorf("list after delete = %+v, want only api", list)
	}
	if old, err := admin.GetProfile(ctx, "web", 2); err != nil || old.Version != 2 {
		t.Errorf("version 2 after delete = %v, %v; want it kept", old, err)
	}

	if got := putProfile(t, admin, one); got.Version != 3 {
		t.Errorf("put after delete = v%d, want v3 (versions are not reused)", got.Version)
	}
	if cur, err := admin.GetProfile(ctx, "web", 0); err != nil || cur.Version != 3 || len(cur.Files) != 1 {
		t.Errorf("current after put = %+v, %v; want v3 with 1 file", cur, err)
	}

	// Invalid puts change nothing.
	bad := one
	bad.Files = []api.ProfileFile{{Name: "../escape", Secret: "app/db"}}
	_, err = admin.PutProfile(ctx, bad)
	ce = wantClientErr(t, "invalid put", err, client.ErrInvalid)
	wantContains(t, "invalid put", ce.Message, `"web"`, "../escape")
	_, err = admin.PutProfile(ctx, api.Profile{Name: "Web", HostPrivate: true})
	wantClientErr(t, "put of a bad name", err, client.ErrInvalid)
	_, err = admin.GetProfile(ctx, "Web", 0)
	wantClientErr(t, "get of a bad name", err, client.ErrInvalid)
	if cur, _ := admin.GetProfile(ctx, "web", 0); cur.Version != 3 {
		t.Errorf("after invalid puts: v%d, want v3", cur.Version)
	}
}

func TestProfileAccess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := servertest.Start(t)
	admin := st.Client(t, st.Root)
	putProfile(t, admin, api.Profile{Name: "web", Files: []api.ProfileFile{{Name: "db", Secret: "app/db"}}})
	p := api.Profile{Name: "web", HostPrivate: true}

	for _, rules := range [][]string{{"read:app/**"}, {"read,write,delete,list:**"}} {
		c := st.Client(t, st.Token(t, rules...))
		_, err := c.PutProfile(ctx, p)
		if ce := wantClientErr(t, "put by "+rules[0], err, client.ErrPermissionDenied); ce.Status != 403 {
			t.Errorf("put by %s: status %d, want 403", rules[0], ce.Status)
		}
		if ce := wantClientErr(t, "delete by "+rules[0], c.DeleteProfile(ctx, "web"), client.ErrPermissionDenied); ce.Status != 403 {
			t.Errorf("delete by %s: status %d, want 403", rules[0], ce.Status)
		}
		if got, err := c.GetProfile(ctx, "web", 0); err != nil || got.Version != 1 {
			t.Errorf("get by %s = %v, %v; want v1", rules[0], got, err)
		}
		if got, err := c.ListProfiles(ctx); err != nil || len(got) != 1 {
			t.Errorf("list by %s = %v, %v; want 1 profile", rules[0], got, err)
		}
	}

	anon := st.Client(t, "")
	calls := map[string]func() error{
		"put":    func() error { _, err := anon.PutProfile(ctx, p); return err },
		"delete": func() error { return anon.DeleteProfile(ctx, "web") },
		"get":    func() error { _, err := anon.GetProfile(ctx, "web", 0); return err },
		"list":   func() error { _, err := anon.ListProfiles(ctx); return err },
		"render": func() error { _, err := anon.Render(ctx, "web", api.RenderRequest{}); return err },
		"oneshot": func() error {
			_, err := anon.Oneshot(ctx, "web", []api.OneshotFile{{Name: "x", Value: []byte("x")}})
			return err
		},
	}
	for name, call := range calls {
		if ce := wantClientErr(t, name+" without a token", call(), client.ErrUnauthenticated); ce.Status != 401 {
			t.Errorf("%s without a token: status %d, want 401", name, ce.Status)
		}
	}
	if got, _ := admin.GetProfile(ctx, "web", 0); got.Version != 1 {
		t.Errorf("after refused changes: v%d, want v1", got.Version)
	}
}

// renderFixture stores the secrets of webProfile.
type renderFixture struct {
	secrets
	v map[string][]byte // path → latest value
}

func newRenderFixture(t *testing.T, st *servertest.Server) *renderFixture {
	f := &renderFixture{v: map[string][]byte{}}
	for _, p := range []string{
		"app/db/password", "app/db/password", "app/tls/key", "app/special",
		"app/env/a", "app/env/sub/b", "app/env/override", "app/envelope",
		"git/deploy-key", "git/known-hosts", "git/age", "git/token", "other/unrelated",
	} {
		f.v[p] = f.value(p)
		st.Put(t, p, f.v[p])
	}
	return f
}

// webProfile uses every kind of source: named files (one overriding a
// prefix's file), a prefix with a dir, and repositories with credentials.
func webProfile() api.Profile {
	return api.Profile{
		Name: "web",
		Files: []api.ProfileFile{
			{Name: "db/password", Secret: "app/db/password", Owner: api.Owner{Mode: 0o440, UID: intp(1000), GID: intp(2000)}},
			{Name: "tls.key", Secret: "app/tls/key"},
			{Name: "env/override", Secret: "app/special"},
		},
		Prefixes: []api.ProfilePrefix{{Prefix: "app/env/", Dir: "env", Owner: api.Owner{Mode: 0o444, GID: intp(33)}}},
		Repos: []api.ProfileRepo{
			{URL: "ssh://git@git.example.com/org/config.git", Dir: "config", SSHKey: "git/deploy-key", KnownHosts: "git/known-hosts", AgeIdentity: "git/age"},
			{URL: "https://git.example.com/org/other.git", Username: "bot", Password: "git/token"},
		},
		HostPrivate: true,
		Post:        []string{"/usr/local/bin/reload", "--quiet"},
		OnRotate:    "SIGHUP",
	}
}

func (f *renderFixture) wantFiles() []api.RenderedFile {
	return []api.RenderedFile{
		{Name: "db/password", Secret: "app/db/password", Version: 2, Mode: 0o440, UID: 1000, GID: 2000, Value: f.v["app/db/password"]},
		{Name: "env/a", Secret: "app/env/a", Version: 1, Mode: 0o444, GID: 33, Value: f.v["app/env/a"]},
		{Name: "env/override", Secret: "app/special", Version: 1, Mode: 0o400, Value: f.v["app/special"]},
		{Name: "env/sub/b", Secret: "app/env/sub/b", Version: 1, Mode: 0o444, GID: 33, Value: f.v["app/env/sub/b"]},
		{Name: "tls.key", Secret: "app/tls/key", Version: 1, Mode: 0o400, Value: f.v["app/tls/key"]},
	}
}

// wantReads is what rendering webProfile reads: the overridden prefix
// file too, and each credential.
var wantReads = map[string]int{
	"app/db/password": 2, "app/tls/key": 1, "app/special": 1,
	"app/env/a": 1, "app/env/sub/b": 1, "app/env/override": 1,
	"git/deploy-key": 1, "git/known-hosts": 1, "git/age": 1, "git/token": 1,
}

func TestRenderProfile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := servertest.Start(t)
	admin := st.Client(t, st.Root)
	f := newRenderFixture(t, st)
	putProfile(t, admin, webProfile())

	r, err := admin.Render(ctx, "web", api.RenderRequest{})
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	if r.Profile != "web" || r.Version != 1 || !r.HostPrivate || r.OnRotate != "SIGHUP" || !slices.Equal(r.Post, webProfile().Post) {
		t.Errorf("rendered %q v%d host_private %v on_rotate %q post %q, want web v1 true SIGHUP %q",
			r.Profile, r.Version, r.HostPrivate, r.OnRotate, r.Post, webProfile().Post)
	}
	checkFiles(t, r.Files, f.wantFiles())

	if len(r.Repos) != 2 {
		t.Fatalf("rendered %d repos, want 2", len(r.Repos))
	}
	ssh, https := r.Repos[0], r.Repos[1]
	if ssh.URL != webProfile().Repos[0].URL || ssh.Dir != "config" || ssh.SSHKey != "git/deploy-key" {
		t.Errorf("ssh repo = %+v, want the profile's repo", ssh.ProfileRepo)
	}
	for _, c := range []struct {
		what      string
		got, want []byte
	}{
		{"ssh key", ssh.SSHKeyValue, f.v["git/deploy-key"]},
		{"known_hosts", ssh.KnownHostsValue, f.v["git/known-hosts"]},
		{"age identity", ssh.AgeIdentityValue, f.v["git/age"]},
		{"ssh repo password", ssh.PasswordValue, nil},
		{"https password", https.PasswordValue, f.v["git/token"]},
		{"https ssh key", https.SSHKeyValue, nil},
	} {
		if !bytes.Equal(c.got, c.want) {
			t.Errorf("%s: got %d bytes, want the value of %d bytes", c.what, len(c.got), len(c.want))
		}
	}
	if https.Username != "bot" {
		t.Errorf("https repo username %q, want bot", https.Username)
	}

	renders, lines := linesOf(st.Audit(t), "profile.render")
	if len(renders) != 1 {
		t.Fatalf("%d profile.render lines, want 1", len(renders))
	}
	actor := "token:" + token.Accessor(st.Root)
	if e := renders[0]; e.Actor != actor || e.Path != ":profiles/web" || e.Version != 1 || e.Outcome != audit.OutcomeOK {
		t.Errorf("render line = %+v, want %s :profiles/web v1 ok", e, actor)
	}
	checkReads(t, lines, actor, "web", wantReads)
	f.checkAuditClean(t, st)
}

func TestRenderProfileErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := servertest.Start(t)
	admin := st.Client(t, st.Root)
	f := newRenderFixture(t, st)
	putProfile(t, admin, api.Profile{Name: "partial", Files: []api.ProfileFile{
		{Name: "db", Secret: "app/db/password"}, {Name: "tls", Secret: "app/tls/key"},
	}})
	putProfile(t, admin, api.Profile{Name: "broken", Files: []api.ProfileFile{
		{Name: "db", Secret: "app/db/password"}, {Name: "cfg", Secret: "app/missing"},
	}})
	putProfile(t, admin, api.Profile{Name: "norepo", Repos: []api.ProfileRepo{
		{URL: "https://bot:hunter2@git.example.com/r.git", Password: "git/missing"},
	}})

	narrow := st.Client(t, st.Token(t, "read:app/db/**"))
	_, err := narrow.Render(ctx, "partial", api.RenderRequest{})
	ce := wantClientErr(t, "render without read on one secret", err, client.ErrPermissionDenied)
	if ce.Status != 403 || ce.Path != "app/tls/key" || ce.Capability != "read" {
		t.Errorf("denied render: status %d path %q capability %q, want 403 app/tls/key read", ce.Status, ce.Path, ce.Capability)
	}
	wantContains(t, "denied render", ce.Message, "app/tls/key")
	renders, _ := linesOf(st.Audit(t), "profile.render")
	if n := len(renders); n != 1 || renders[0].Outcome != audit.OutcomeDenied || renders[0].Path != ":profiles/partial" {
		t.Errorf("render lines = %+v, want one denied for :profiles/partial", renders)
	}

	tests := []struct {
		name, profile string
		want          error
		parts         []string
	}{
		{"missing secret of a file", "broken", client.ErrNotFound, []string{`"broken"`, "file cfg", `"app/missing"`}},
		{"missing repo credential", "norepo", client.ErrNotFound, []string{`"norepo"`, "password", `"git/missing"`}},
		{"unknown profile", "nope", client.ErrNotFound, []string{`no profile named "nope"`}},
		{"bad profile name", "No/pe", client.ErrInvalid, nil},
	}
	for _, tt := range tests {
		_, err := admin.Render(ctx, tt.profile, api.RenderRequest{})
		ce := wantClientErr(t, tt.name, err, tt.want)
		wantContains(t, tt.name, ce.Message, tt.parts...)
		if strings.Contains(ce.Message, "hunter2") {
			t.Errorf("%s: message %q holds the URL's password", tt.name, ce.Message)
		}
	}
	_, err = admin.Render(ctx, "broken", api.RenderRequest{})
	ce = wantClientErr(t, "missing secret", err, client.ErrNotFound)
	wantContains(t, "missing secret hint", ce.Hint, "privy secret put app/missing")
	f.checkAuditClean(t, st)
}

func TestOneshot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := servertest.Start(t)
	admin := st.Client(t, st.Root)
	f := newRenderFixture(t, st)
	putProfile(t, admin, api.Profile{Name: "job", Files: []api.ProfileFile{
		{Name: "config.yaml", Secret: "app/db/password"}, {Name: "run.env", Secret: "app/tls/key"},
	}})
	putProfile(t, admin, api.Profile{Name: "other", Files: []api.ProfileFile{{Name: "x", Secret: "app/db/password"}}})
	reader := st.Client(t, st.Token(t, "read:app/**"))
	runEnv, extra := f.value("run-env"), f.value("extra")
	files := func() []api.OneshotFile {
		return []api.OneshotFile{{Name: "run.env", Mode: 0o600, Value: runEnv}, {Name: "args/extra", Value: extra}}
	}

	before := time.Now()
	o, err := reader.Oneshot(ctx, "job", files())
	if err != nil {
		t.Fatalf("Oneshot: %v", err)
	}
	if !strings.HasPrefix(o.Ticket, "pvo_") || len(o.Ticket) < 40 {
		t.Errorf("ticket %q, want pvo_ and 32 random bytes", o.Ticket)
	}
	if lo, hi := before.Add(server.OneshotTTL), time.Now().Add(server.OneshotTTL); o.Expires.Before(lo.Add(-time.Second)) || o.Expires.After(hi.Add(time.Second)) {
		t.Errorf("expires %v, want about %v from now", o.Expires, server.OneshotTTL)
	}
	r, err := reader.Render(ctx, "job", api.RenderRequest{Oneshot: o.Ticket})
	if err != nil {
		t.Fatalf("Render with a ticket: %v", err)
	}
	checkFiles(t, r.Files, []api.RenderedFile{
		{Name: "args/extra", Mode: 0o400, Value: extra},
		{Name: "config.yaml", Secret: "app/db/password", Version: 2, Mode: 0o400, Value: f.v["app/db/password"]},
		{Name: "run.env", Mode: 0o600, Value: runEnv},
	})
	renders, _ := linesOf(st.Audit(t), "profile.render")
	if e := renders[len(renders)-1]; e.Outcome != audit.OutcomeOK || e.Extra["oneshot"] != "2 files" {
		t.Errorf("render line %+v, want ok with extra oneshot=2 files", e)
	}

	_, err = reader.Render(ctx, "job", api.RenderRequest{Oneshot: o.Ticket})
	ce := wantClientErr(t, "second use of a ticket", err, client.ErrNotFound)
	wantContains(t, "second use", ce.Message, "unknown, already used or expired")

	o2, err := reader.Oneshot(ctx, "job", files())
	if err != nil {
		t.Fatal(err)
	}
	_, err = reader.Render(ctx, "other", api.RenderRequest{Oneshot: o2.Ticket})
	ce = wantClientErr(t, "ticket of another profile", err, client.ErrInvalid)
	wantContains(t, "ticket of another profile", ce.Message, `"job"`, `"other"`)
	for _, bad := range []string{"pvo_unknown", "not-a-ticket", o.Ticket[:len(o.Ticket)-1]} {
		_, err = reader.Render(ctx, "job", api.RenderRequest{Oneshot: bad})
		wantClientErr(t, "ticket "+bad, err, client.ErrNotFound)
	}

	narrow := st.Client(t, st.Token(t, "read:app/db/**"))
	_, err = narrow.Oneshot(ctx, "job", files())
	if ce := wantClientErr(t, "oneshot without read", err, client.ErrPermissionDenied); ce.Path != "app/tls/key" {
		t.Errorf("oneshot without read: path %q, want app/tls/key", ce.Path)
	}
	_, err = reader.Oneshot(ctx, "nope", files())
	wantClientErr(t, "oneshot of an unknown profile", err, client.ErrNotFound)

	tests := []struct {
		name  string
		files []api.OneshotFile
	}{
		{"no files", nil},
		{"empty list", []api.OneshotFile{}},
		{"empty name", []api.OneshotFile{{Name: "", Value: []byte("v")}}},
		{"absolute name", []api.OneshotFile{{Name: "/etc/passwd", Value: []byte("v")}}},
		{"escaping name", []api.OneshotFile{{Name: "../x", Value: []byte("v")}}},
		{"unclean name", []api.OneshotFile{{Name: "a//b", Value: []byte("v")}}},
		{"privy's own name", []api.OneshotFile{{Name: ".privy-tmp-x", Value: []byte("v")}}},
		{"duplicate names", []api.OneshotFile{{Name: "a", Value: []byte("v")}, {Name: "a", Value: []byte("w")}}},
		{"setuid mode", []api.OneshotFile{{Name: "a", Mode: 0o4755, Value: []byte("v")}}},
	}
	for _, tt := range tests {
		_, err := reader.Oneshot(ctx, "job", tt.files)
		wantClientErr(t, tt.name, err, client.ErrInvalid)
	}
	f.checkAuditClean(t, st)
}

func TestOneshotExpiryAndSize(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := &clock{now: time.Now().UTC()}
	st := servertest.StartWith(t, func(c *server.Config) {
		c.Now = clk.Now
		c.MaxValueSize = 64
	})
	admin := st.Client(t, st.Root)
	var s secrets
	st.Put(t, "app/k", s.value("k"))
	putProfile(t, admin, api.Profile{Name: "job", Files: []api.ProfileFile{{Name: "k", Secret: "app/k"}}})
	one := []api.OneshotFile{{Name: "x", Value: s.value("x")}}

	o, err := admin.Oneshot(ctx, "job", one)
	if err != nil {
		t.Fatal(err)
	}
	if want := clk.Now().Add(server.OneshotTTL); !o.Expires.Equal(want) {
		t.Errorf("expires %v, want %v", o.Expires, want)
	}
	clk.Advance(server.OneshotTTL - time.Second)
	if r, err := admin.Render(ctx, "job", api.RenderRequest{Oneshot: o.Ticket}); err != nil || len(r.Files) != 2 {
		t.Errorf("render just before expiry = %v, %v; want 2 files", r, err)
	}

	o, err = admin.Oneshot(ctx, "job", one)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(server.OneshotTTL + time.Second)
	_, err = admin.Render(ctx, "job", api.RenderRequest{Oneshot: o.Ticket})
	ce := wantClientErr(t, "expired ticket", err, client.ErrNotFound)
	wantContains(t, "expired ticket", ce.Message, "expired")
	if r, err := admin.Render(ctx, "job", api.RenderRequest{}); err != nil || len(r.Files) != 1 {
		t.Errorf("render without a ticket = %v, %v; want the profile's file", r, err)
	}

	_, err = admin.Oneshot(ctx, "job", []api.OneshotFile{{Name: "a", Value: make([]byte, 40)}, {Name: "b", Value: make([]byte, 40)}})
	wantClientErr(t, "per-run files over the size limit", err, client.ErrTooLarge)
	s.checkAuditClean(t, st)
}

func TestRenderInProcess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := servertest.Start(t)
	admin := st.Client(t, st.Root)
	f := newRenderFixture(t, st)
	putProfile(t, admin, webProfile())

	r, err := st.Srv.Render(ctx, "web", api.RenderRequest{}, "volume:test")
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	checkFiles(t, r.Files, f.wantFiles())
	renders, lines := linesOf(st.Audit(t), "profile.render")
	if len(renders) != 1 {
		t.Fatalf("%d profile.render lines, want 1", len(renders))
	}
	if e := renders[0]; e.Actor != "volume:test" || e.Path != ":profiles/web" || e.Version != 1 || e.Outcome != audit.OutcomeOK || e.RequestID == "" {
		t.Errorf("render line = %+v, want volume:test :profiles/web v1 ok with a request id", e)
	}
	checkReads(t, lines, "volume:test", "web", wantReads)

	// A ticket made over the API is taken by the in-process render.
	val := f.value("oneshot")
	o, err := admin.Oneshot(ctx, "web", []api.OneshotFile{{Name: "tls.key", Mode: 0o640, Value: val}})
	if err != nil {
		t.Fatal(err)
	}
	r, err = st.Srv.Render(ctx, "web", api.RenderRequest{Oneshot: o.Ticket}, "volume:test")
	if err != nil {
		t.Fatalf("Render with a ticket: %v", err)
	}
	if last := r.Files[len(r.Files)-1]; last.Name != "tls.key" || last.Secret != "" || last.Mode != 0o640 || !bytes.Equal(last.Value, val) {
		t.Errorf("tls.key = %q from %q mode %#o, want the per-run file, mode 0640", last.Name, last.Secret, last.Mode)
	}

	_, err = st.Srv.Render(ctx, "nope", api.RenderRequest{}, "volume:test")
	var re *server.RenderError
	if !errors.As(err, &re) {
		t.Fatalf("Render of an unknown profile = %v (%T), want *server.RenderError", err, err)
	}
	if re.Profile != "nope" || re.Err.Code != api.CodeNotFound {
		t.Errorf("RenderError = %+v, want profile nope, not_found", re)
	}
	wantContains(t, "RenderError", err.Error(), `"nope"`)
	renders, _ = linesOf(st.Audit(t), "profile.render")
	if e := renders[len(renders)-1]; e.Actor != "volume:test" || e.Outcome != audit.OutcomeNotFound || e.Path != ":profiles/nope" {
		t.Errorf("failed render line = %+v, want volume:test not_found :profiles/nope", e)
	}
	f.checkAuditClean(t, st)
}

func TestSubscribe(t *testing.T) {
	t.Parallel()
	st := servertest.Start(t)
	var s secrets
	changes := make(chan api.Change, 8)
	cancel := st.Srv.Subscribe(func(c api.Change) { changes <- c })
	// notify runs before the put's reply, so a change is there when Put
	// returns.
	st.Put(t, "app/a", s.value("a"))
	st.Put(t, "app/a", s.value("a"))
	for _, want := range []api.Change{{Path: "app/a", Version: 1}, {Path: "app/a", Version: 2}} {
		select {
		case got := <-changes:
			if got != want {
				t.Errorf("change = %+v, want %+v", got, want)
			}
		default:
			t.Fatalf("no change for %+v", want)
		}
	}
	cancel()
	st.Put(t, "app/a", s.value("a"))
	select {
	case c := <-changes:
		t.Errorf("change %+v after cancel", c)
	default:
	}
	cancel() // a second cancel is harmless
}

func TestWatchProfile(t *testing.T) {
	t.Parallel()
	st := servertest.Start(t)
	admin := st.Client(t, st.Root)
	var s secrets
	putProfile(t, admin, api.Profile{Name: "web",
		Files:    []api.ProfileFile{{Name: "db", Secret: "app/db/password"}},
		Prefixes: []api.ProfilePrefix{{Prefix: "app/env/"}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	narrow := st.Client(t, st.Token(t, "read:app/db/**"))
	err := narrow.WatchProfile(ctx, "web", func(api.Change) error { return nil })
	if ce := wantClientErr(t, "watch without read", err, client.ErrPermissionDenied); ce.Path != "app/env/**" {
		t.Errorf("watch without read: path %q, want app/env/**", ce.Path)
	}
	err = admin.WatchProfile(ctx, "nope", func(api.Change) error { return nil })
	wantClientErr(t, "watch of an unknown profile", err, client.ErrNotFound)

	wctx, stop := context.WithCancel(ctx)
	changes := make(chan api.Change, 16)
	done := make(chan error, 1)
	go func() {
		done <- admin.WatchProfile(wctx, "web", func(c api.Change) error { changes <- c; return nil })
	}()
	// The watch's audit line is written once it has subscribed. The log
	// is read while the server writes it, so only whole lines count.
	for deadline := time.Now().Add(5 * time.Second); !watchAudited(t, st.AuditPath); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the watch never started")
		}
	}
	st.Put(t, "other/unrelated", s.value("u"))
	st.Put(t, "app/env/new", s.value("n"))
	st.Put(t, "app/envelope", s.value("e"))
	st.Put(t, "app/db/password", s.value("p"))
	st.Put(t, "app/db/password-old", s.value("o"))
	st.Put(t, "app/db/password", s.value("p"))
	for _, want := range []api.Change{{Path: "app/env/new", Version: 1}, {Path: "app/db/password", Version: 1}, {Path: "app/db/password", Version: 2}} {
		select {
		case got := <-changes:
			if got != want {
				t.Errorf("change = %+v, want %+v", got, want)
			}
		case <-ctx.Done():
			t.Fatalf("no change for %+v", want)
		}
	}
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("WatchProfile after cancel = %v, want context.Canceled", err)
	}
	select {
	case c := <-changes:
		t.Errorf("unexpected change %+v", c)
	default:
	}
}

// watchAudited reports whether the audit log at path has a whole line
// saying that a profile watch started.
func watchAudited(t *testing.T, path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(b, []byte("\n"))
	for _, l := range lines[:len(lines)-1] { // the last is empty or partial
		var e audit.Entry
		if json.Unmarshal(l, &e) == nil && e.Op == "profile.watch" && e.Outcome == audit.OutcomeOK {
			return true
		}
	}
	return false
}

// testIdentifier stands in for the Docker-backed Identifier: it answers
// every pid with one container or error, and records the pids it saw.
type testIdentifier struct {
	mu   sync.Mutex
	c    server.Container
	err  error
	pids []int
}

func (i *testIdentifier) Identify(_ context.Context, pid int) (server.Container, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.pids = append(i.pids, pid)
	return i.c, i.err
}

func (i *testIdentifier) seen() []int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return slices.Clone(i.pids)
}

func (i *testIdentifier) set(c server.Container, err error) {
	i.mu.Lock()
	i.c, i.err = c, err
	i.mu.Unlock()
}

const containerID = "3f4e5d6c7b8a91a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081920"

func TestContainerIdentity(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ident := &testIdentifier{c: server.Container{ID: containerID, Name: "web-1", Image: "registry.example.com/web:1.2", Profile: "web"}}
	st := servertest.StartWith(t, func(c *server.Config) { c.Containers = ident })
	admin := st.Client(t, st.Root)
	f := newRenderFixture(t, st)
	putProfile(t, admin, webProfile())
	putProfile(t, admin, api.Profile{Name: "other", Files: []api.ProfileFile{{Name: "x", Secret: "other/unrelated"}}})
	if pids := ident.seen(); len(pids) != 0 {
		t.Errorf("callers with a token were identified (pids %v)", pids)
	}
	anon := st.Client(t, "")

	r, err := anon.Render(ctx, "web", api.RenderRequest{})
	if err != nil {
		t.Fatalf("a container's render of its own profile: %v", err)
	}
	checkFiles(t, r.Files, f.wantFiles())
	if pids := ident.seen(); len(pids) == 0 || pids[0] != os.Getpid() {
		t.Errorf("Identify saw pids %v, want this process's %d", pids, os.Getpid())
	}
	renders, lines := linesOf(st.Audit(t), "profile.render")
	actor := "container:" + containerID[:12]
	if e := renders[len(renders)-1]; e.Actor != actor || e.Outcome != audit.OutcomeOK ||
		e.Extra["image"] != "registry.example.com/web:1.2" || e.Extra["profile"] != "web" || e.Extra["container"] != "web-1" {
		t.Errorf("render line = %+v, want %s ok with image, profile and container", e, actor)
	}
	checkReads(t, lines, actor, "web", wantReads)

	if _, err := anon.GetProfile(ctx, "web", 0); err != nil {
		t.Errorf("a container's get of its profile: %v", err)
	}
	denied := map[string]func() error{
		"render of another profile": func() error { _, err := anon.Render(ctx, "other", api.RenderRequest{}); return err },
		"secret get":                func() error { _, err := anon.GetSecret(ctx, "app/db/password", 0); return err },
		"secret get of another":     func() error { _, err := anon.GetSecret(ctx, "other/unrelated", 0); return err },
		"secret put":                func() error { _, err := anon.PutSecret(ctx, "app/x", f.value("x")); return err },
		"profile put":               func() error { _, err := anon.PutProfile(ctx, webProfile()); return err },
		"oneshot of its profile": func() error {
			_, err := anon.Oneshot(ctx, "web", []api.OneshotFile{{Name: "x", Value: []byte("x")}})
			return err
		},
		"watch of another profile": func() error {
			return anon.WatchProfile(ctx, "other", func(api.Change) error { return nil })
		},
	}
	for name, call := range denied {
		if ce := wantClientErr(t, name, call(), client.ErrPermissionDenied); ce.Status != 403 {
			t.Errorf("%s: status %d, want 403", name, ce.Status)
		}
	}
	_, err = anon.Render(ctx, "other", api.RenderRequest{})
	ce := wantClientErr(t, "render of another profile", err, client.ErrPermissionDenied)
	wantContains(t, "render of another profile", ce.Message, containerID[:12], `"web"`, `"other"`)
	wantContains(t, "render of another profile hint", ce.Hint, "privy.profile=other")

	ident.set(server.Container{ID: containerID, Image: "busybox"}, nil)
	_, err = anon.Render(ctx, "web", api.RenderRequest{})
	ce = wantClientErr(t, "container without a label", err, client.ErrPermissionDenied)
	wantContains(t, "container without a label", ce.Message, containerID[:12], "no privy.profile label")
	renders, _ = linesOf(st.Audit(t), "profile.render")
	if e := renders[len(renders)-1]; e.Actor != actor || e.Outcome != audit.OutcomeDenied || e.Extra["image"] != "busybox" {
		t.Errorf("unlabelled render line = %+v, want %s denied image=busybox", e, actor)
	}

	ident.set(server.Container{}, server.ErrNotContainer)
	_, err = anon.Render(ctx, "web", api.RenderRequest{})
	ce = wantClientErr(t, "host process without a token", err, client.ErrUnauthenticated)
	wantContains(t, "host process without a token", ce.Message, "no token given")

	ident.set(server.Container{}, errors.New("docker: connection refused"))
	_, err = anon.Render(ctx, "web", api.RenderRequest{})
	ce = wantClientErr(t, "identification failing", err, client.ErrUnauthenticated)
	wantContains(t, "identification failing", ce.Message, "could not be identified")

	// A token still wins over identification.
	ident.set(server.Container{ID: containerID, Profile: "other"}, nil)
	if _, err := admin.Render(ctx, "web", api.RenderRequest{}); err != nil {
		t.Errorf("admin render beside an identifier: %v", err)
	}
	f.checkAuditClean(t, st)
}

// TestOneshotContainerCannotCreateForAnotherProfile shows a bug:
// createOneshot checks read on the profile's secrets, which a container
// never has, but a profile that names no secret (host_private only, or
// public repositories) has none to check, so a container labelled for
// "web" can add per-run files to "bare", a profile it may not render.
func TestOneshotContainerCannotCreateForAnotherProfile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ident := &testIdentifier{c: server.Container{ID: containerID, Image: "web", Profile: "web"}}
	st := servertest.StartWith(t, func(c *server.Config) { c.Containers = ident })
	admin := st.Client(t, st.Root)
	putProfile(t, admin, api.Profile{Name: "web", HostPrivate: true})
	putProfile(t, admin, api.Profile{Name: "bare", HostPrivate: true})
	anon := st.Client(t, "")
	if _, err := anon.Render(ctx, "bare", api.RenderRequest{}); !errors.Is(err, client.ErrPermissionDenied) {
		t.Fatalf("a container's render of another profile = %v, want permission denied", err)
	}
	o, err := anon.Oneshot(ctx, "bare", []api.OneshotFile{{Name: "injected", Value: []byte("x")}})
	if !errors.Is(err, client.ErrPermissionDenied) {
		t.Errorf("a container labelled web made per-run files for bare: got %v, %v; want permission denied", o, err)
	}
}

// TestOneshotPrefixNeedsReadOnEverythingUnderIt shows a bug: a prefix is
// authorized as the literal path "app/env/**", which the rule
// "read:app/env/*" matches ('*' matches the segment "**"), although that
// token cannot read app/env/sub/b, which the prefix delivers. The same
// check guards GET /v1/profiles/{name}/watch.
func TestOneshotPrefixNeedsReadOnEverythingUnderIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := servertest.Start(t)
	admin := st.Client(t, st.Root)
	var s secrets
	st.Put(t, "app/env/a", s.value("a"))
	st.Put(t, "app/env/sub/b", s.value("b"))
	putProfile(t, admin, api.Profile{Name: "web", Prefixes: []api.ProfilePrefix{{Prefix: "app/env/"}}})
	shallow := st.Client(t, st.Token(t, "read:app/env/*"))
	if _, err := shallow.Render(ctx, "web", api.RenderRequest{}); !errors.Is(err, client.ErrPermissionDenied) {
		t.Fatalf("render by read:app/env/* = %v, want permission denied on app/env/sub/b", err)
	}
	o, err := shallow.Oneshot(ctx, "web", []api.OneshotFile{{Name: "x", Value: []byte("x")}})
	if !errors.Is(err, client.ErrPermissionDenied) {
		t.Errorf("oneshot by read:app/env/* = %v, %v; want permission denied", o, err)
	}
}

// racingStore makes two profile puts interleave the way that loses the
// version record: both write their version record, then the first writer
// replaces the current definition while the second waits its turn.
type racingStore struct {
	store.Store
	mu      sync.Mutex
	armed   bool
	order   []string      // values of the armed version puts, in order
	both    chan struct{} // closed once two version puts were tried
	current chan struct{} // closed once the first current put returned
}

func (r *racingStore) PutRecord(ctx context.Context, kind, key string, value []byte, prev int64) (int64, error) {
	r.mu.Lock()
	armed := r.armed
	r.mu.Unlock()
	if !armed {
		return r.Store.PutRecord(ctx, kind, key, value, prev)
	}
	switch kind {
	case "profile-version":
		rev, err := r.Store.PutRecord(ctx, kind, key, value, prev)
		r.mu.Lock()
		if r.order = append(r.order, string(value)); len(r.order) == 2 {
			close(r.both)
		}
		r.mu.Unlock()
		return rev, err
	case "profile":
		wait := func(c chan struct{}) {
			select {
			case <-c:
			case <-time.After(2 * time.Second):
			}
		}
		wait(r.both)
		r.mu.Lock()
		first := len(r.order) > 0 && r.order[0] == string(value)
		r.mu.Unlock()
		if !first {
			wait(r.current)
			return r.Store.PutRecord(ctx, kind, key, value, prev)
		}
		defer close(r.current)
		return r.Store.PutRecord(ctx, kind, key, value, prev)
	}
	return r.Store.PutRecord(ctx, kind, key, value, prev)
}

// TestConcurrentProfilePutsKeepVersionRecord shows a bug: putProfile
// writes the version record unconditionally (store.AnyRevision) before
// the conditional write of the current definition, so of two concurrent
// puts the one that loses with 409 has still overwritten the winner's
// version record: GET ?version=N then differs from the current version N.
func TestConcurrentProfilePutsKeepVersionRecord(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var rs *racingStore
	st := servertest.StartWith(t, func(c *server.Config) {
		rs = &racingStore{Store: c.Store, both: make(chan struct{}), current: make(chan struct{})}
		c.Store = rs
	})
	admin := st.Client(t, st.Root)
	putProfile(t, admin, api.Profile{Name: "web", HostPrivate: true})
	rs.mu.Lock()
	rs.armed = true
	rs.mu.Unlock()

	type result struct {
		p   *api.Profile
		err error
	}
	results := make(chan result, 2)
	for _, post := range []string{"first", "second"} {
		go func() {
			p, err := admin.PutProfile(ctx, api.Profile{Name: "web", HostPrivate: true, Post: []string{post}})
			results <- result{p, err}
		}()
	}
	var won []*api.Profile
	for range 2 {
		r := <-results
		switch {
		case r.err == nil:
			won = append(won, r.p)
		case !errors.Is(r.err, client.ErrConflict):
			t.Fatalf("concurrent put: %v, want success or a conflict", r.err)
		}
	}
	if len(won) != 1 {
		t.Fatalf("%d concurrent puts succeeded, want 1", len(won))
	}
	w := won[0]
	cur, err := admin.GetProfile(ctx, "web", 0)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := admin.GetProfile(ctx, "web", w.Version)
	if err != nil {
		t.Fatal(err)
	}
	if cur.Version != w.Version || !slices.Equal(cur.Post, w.Post) {
		t.Errorf("current = v%d post %q, want the winner's v%d post %q", cur.Version, cur.Post, w.Version, w.Post)
	}
	if !slices.Equal(rec.Post, w.Post) {
		t.Errorf("version %d record has post %q, but the put that made version %d has post %q", w.Version, rec.Post, w.Version, w.Post)
	}
}

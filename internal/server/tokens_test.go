package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/client"
	"github.com/privyhq/privy/internal/token"
)

func TestTokenPolicy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	root := e.client(e.root)
	e.put(t, root, "app/web/x", e.value())
	e.put(t, root, "app/db/x", e.value())

	nt := e.token(t, api.CreateTokenRequest{Name: "web", Rules: []string{"read:app/web/**"}})
	if !strings.HasPrefix(nt.Token, token.Prefix) || nt.Accessor != token.Accessor(nt.Token) {
		t.Errorf("new token %q has accessor %q; want a %s token and its accessor", nt.Token, nt.Accessor, token.Prefix)
	}
	if !slices.Equal(nt.Rules, []string{"read:app/web/**"}) || nt.Name != "web" || nt.CreatedBy == "" {
		t.Errorf("new token info = %+v", nt.TokenInfo)
	}
	web := e.client(nt.Token)
	e.get(t, web, "app/web/x", 0)

	tests := []struct {
		name    string
		do      func() error
		wantCap string
		path    string
	}{
		{"read elsewhere", func() error { _, err := web.GetSecret(ctx, "app/db/x", 0); return err }, "read", "app/db/x"},
		{"write", func() error { _, err := web.PutSecret(ctx, "app/web/x", e.value()); return err }, "write", "app/web/x"},
		{"delete", func() error { return web.DeleteSecret(ctx, "app/web/x", false) }, "delete", "app/web/x"},
		{"history elsewhere", func() error { _, err := web.History(ctx, "app/db/x"); return err }, "read", "app/db/x"},
		{"create token", func() error {
			_, err := web.CreateToken(ctx, api.CreateTokenRequest{Rules: []string{"read:app/web/**"}})
			return err
		}, "admin", ":sys/tokens"},
		{"list tokens", func() error { _, err := web.ListTokens(ctx); return err }, "admin", ":sys/tokens"},
		{"revoke", func() error { return web.RevokeToken(ctx, nt.Accessor) }, "admin", ":sys/tokens"},
		{"rotate", func() error { _, err := web.RotateMasterKey(ctx, api.RotateRequest{}); return err }, "admin", ":sys/keys"},
		{"audit verify", func() error { _, err := web.AuditVerify(ctx); return err }, "admin", ":sys/audit"},
		{"audit tail", func() error { return web.AuditTail(ctx, 5, false, func([]byte) error { return nil }) }, "admin", ":sys/audit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ce := e.wantErr(t, tt.name, tt.do(), client.ErrPermissionDenied)
			if ce.Status != http.StatusForbidden || ce.Capability != tt.wantCap || ce.Path != tt.path {
				t.Errorf("got %d %q on %q, want 403 %q on %q", ce.Status, ce.Capability, ce.Path, tt.wantCap, tt.path)
			}
			if !strings.Contains(ce.Message, tt.wantCap) || !strings.Contains(ce.Message, tt.path) {
				t.Errorf("got message %q, want it to name %q and %q", ce.Message, tt.wantCap, tt.path)
			}
			if ce.Hint == "" {
				t.Error("got no hint")
			}
		})
	}
	// The token still works: denials cost nothing.
	e.get(t, web, "app/web/x", 0)
}

func TestTokenUnauthenticated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	e.put(t, e.client(e.root), "app/x", e.value())
	unknown, err := token.Generate()
	if err != nil {
		t.Fatal(err)
	}
	e.note([]byte(unknown))
	tests := []struct{ name, tok, want string }{
		{"no token", "", "no token given"},
		{"malformed", "hello", "malformed token"},
		{"almost a token", token.Prefix + "short", "malformed token"},
		{"unknown", unknown, "unknown or revoked token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.client(tt.tok)
			calls := map[string]error{}
			_, calls["get"] = c.GetSecret(ctx, "app/x", 0)
			_, calls["put"] = c.PutSecret(ctx, "app/x", e.value())
			_, calls["list"] = c.ListSecrets(ctx, "")
			_, calls["history"] = c.History(ctx, "app/x")
			_, calls["self"] = c.TokenSelf(ctx)
			_, calls["tokens"] = c.ListTokens(ctx)
			for name, err := range calls {
				ce := e.wantErr(t, name, err, client.ErrUnauthenticated)
				if ce.Status != http.StatusUnauthorized || ce.Message != tt.want || ce.Hint == "" {
					t.Errorf("%s: got %d %q (hint %q), want 401 %q and a hint", name, ce.Status, ce.Message, ce.Hint, tt.want)
				}
			}
		})
	}
	// A header that is not a bearer token.
	status, _ := e.raw(t, http.MethodGet, "/v1/secrets/app/x", "", nil)
	if status != http.StatusUnauthorized {
		t.Errorf("no header: got %d, want 401", status)
	}
	if st, err := e.client("").Status(ctx); err != nil || st.Sealed {
		t.Errorf("Status without token = %+v, %v; want it to answer", st, err)
	}
}

func TestTokenUses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	e.put(t, e.client(e.root), "app/x", e.value())

	two := e.token(t, api.CreateTokenRequest{Rules: []string{"read:app/**"}, Uses: 2})
	if two.UsesLeft == nil || *two.UsesLeft != 2 {
		t.Errorf("uses_left = %v, want 2", two.UsesLeft)
	}
	c := e.client(two.Token)
	e.get(t, c, "app/x", 0)
	e.get(t, c, "app/x", 0)
	_, err := c.GetSecret(ctx, "app/x", 0)
	e.wantErr(t, "third use", err, client.ErrUnauthenticated)

	t.Run("concurrent", func(t *testing.T) {
		c := e.client(e.token(t, api.CreateTokenRequest{Rules: []string{"read:app/**"}, Uses: 5}).Token)
		var wg sync.WaitGroup
		errs := make([]error, 20)
		for i := range errs {
			wg.Go(func() { _, errs[i] = c.GetSecret(ctx, "app/x", 0) })
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, client.ErrUnauthenticated):
				e.noteErr(err)
			default:
				t.Errorf("got %v, want success or ErrUnauthenticated", err)
			}
		}
		if ok != 5 {
			t.Errorf("%d of 20 concurrent requests succeeded with a 5-use token, want 5", ok)
		}
	})

	_, err = e.client(e.root).CreateToken(ctx, api.CreateTokenRequest{Rules: []string{"read:**"}, Uses: -1})
	e.wantErr(t, "negative uses", err, client.ErrInvalid)
}

func TestTokenTTL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	root := e.client(e.root)
	e.put(t, root, "app/x", e.value())
	start := e.clock.Now()
	nt := e.token(t, api.CreateTokenRequest{Rules: []string{"read:app/**"}, TTL: "1h"})
	if nt.Expires == nil || !nt.Expires.Equal(start.Add(time.Hour)) {
		t.Errorf("expires = %v, want %v", nt.Expires, start.Add(time.Hour))
	}
	c := e.client(nt.Token)
	e.get(t, c, "app/x", 0)
	e.clock.Advance(time.Hour - time.Second)
	e.get(t, c, "app/x", 0)
	if !listed(t, root, nt.Accessor) {
		t.Error("live token missing from the token list")
	}
	e.clock.Advance(time.Second)
	_, err := c.GetSecret(ctx, "app/x", 0)
	if ce := e.wantErr(t, "expired", err, client.ErrUnauthenticated); ce.Message != "token expired" {
		t.Errorf("got message %q, want %q", ce.Message, "token expired")
	}
	if listed(t, root, nt.Accessor) {
		t.Error("expired token still in the token list")
	}

	for _, ttl := range []string{"soon", "-1h", "0s"} {
		_, err := root.CreateToken(ctx, api.CreateTokenRequest{Rules: []string{"read:**"}, TTL: ttl})
		if ce := e.wantErr(t, "ttl "+ttl, err, client.ErrInvalid); !strings.Contains(ce.Message, ttl) {
			t.Errorf("ttl %q: got message %q, want it named", ttl, ce.Message)
		}
	}
}

func listed(t *testing.T, c *client.Client, accessor string) bool {
	t.Helper()
	l, err := c.ListTokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(l, func(ti api.TokenInfo) bool { return ti.Accessor == accessor })
}

func TestTokenRevoke(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	root := e.client(e.root)
	e.put(t, root, "app/x", e.value())
	nt := e.token(t, api.CreateTokenRequest{Rules: []string{"read:app/**"}})
	c := e.client(nt.Token)
	e.get(t, c, "app/x", 0)
	if err := root.RevokeToken(ctx, nt.Accessor); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	_, err := c.GetSecret(ctx, "app/x", 0)
	e.wantErr(t, "revoked", err, client.ErrUnauthenticated)
	if listed(t, root, nt.Accessor) {
		t.Error("revoked token still listed")
	}
	ce := e.wantErr(t, "revoke twice", root.RevokeToken(ctx, nt.Accessor), client.ErrNotFound)
	if !strings.Contains(ce.Message, nt.Accessor) {
		t.Errorf("got message %q, want it to name the accessor", ce.Message)
	}
}

func TestTokenCreateLimits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{})

	// admin on app/** administers secrets there, not tokens.
	appAdmin := e.client(e.tokenWith(t, "admin:app/**"))
	_, err := appAdmin.CreateToken(ctx, api.CreateTokenRequest{Rules: []string{"read:**"}})
	ce := e.wantErr(t, "admin:app/** creates read:**", err, client.ErrPermissionDenied)
	if ce.Capability != "admin" || ce.Path != ":sys/tokens" {
		t.Errorf("got %q on %q, want admin on :sys/tokens", ce.Capability, ce.Path)
	}

	// A token that may manage tokens hands out only what it holds.
	tokenAdmin := e.client(e.tokenWith(t, "admin:**/tokens", "read,list:app/**"))
	tests := []struct {
		rules []string
		want  error
	}{
		{[]string{"read:**"}, client.ErrPermissionDenied},
		{[]string{"write:app/web/**"}, client.ErrPermissionDenied},
		{[]string{"read:app/web/**", "admin:other/**"}, client.ErrPermissionDenied},
		{[]string{"read:app/web/**"}, nil},
		{[]string{"read,list:app/**"}, nil},
	}
	for _, tt := range tests {
		nt, err := tokenAdmin.CreateToken(ctx, api.CreateTokenRequest{Rules: tt.rules})
		if tt.want == nil {
			if err != nil {
				t.Errorf("create %v: %v", tt.rules, err)
			} else {
				e.note([]byte(nt.Token))
			}
			continue
		}
		ce := e.wantErr(t, "create "+strings.Join(tt.rules, " "), err, tt.want)
		if !strings.Contains(ce.Message, "beyond") {
			t.Errorf("create %v: got message %q, want the covering rule explained", tt.rules, ce.Message)
		}
	}

	root := e.client(e.root)
	for _, rules := range [][]string{nil, {}, {"read"}, {"fly:app/**"}, {"read:/abs"}} {
		_, err := root.CreateToken(ctx, api.CreateTokenRequest{Rules: rules})
		e.wantErr(t, "bad rules", err, client.ErrInvalid)
	}
}

func TestTokenListAndSelf(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	root := e.client(e.root)
	a := e.token(t, api.CreateTokenRequest{Name: "a", Rules: []string{"read:app/**"}, TTL: "2h", Uses: 3})
	b := e.token(t, api.CreateTokenRequest{Name: "b", Rules: []string{"list:app/**", "write:app/web/*"}})

	l, err := root.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 3 {
		t.Errorf("got %d tokens, want 3 (root, a, b)", len(l))
	}
	raw, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), token.Prefix) {
		t.Errorf("the token list holds a token string: %s", raw)
	}
	for _, tok := range []string{e.root, a.Token, b.Token} {
		if strings.Contains(string(raw), tok) {
			t.Errorf("the token list holds token %q", tok)
		}
		if !strings.Contains(string(raw), token.Accessor(tok)) {
			t.Errorf("the token list lacks accessor %s", token.Accessor(tok))
		}
	}
	_, body := e.raw(t, http.MethodGet, "/v1/tokens", e.root, nil)
	if strings.Contains(string(body), token.Prefix) {
		t.Errorf("GET /v1/tokens holds a token string: %s", body)
	}

	self, err := e.client(b.Token).TokenSelf(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if self.Accessor != b.Accessor || self.Name != "b" || !slices.Equal(self.Rules, []string{"list:app/**", "write:app/web/*"}) ||
		self.Expires != nil || self.UsesLeft != nil {
		t.Errorf("TokenSelf = %+v, want b's info", self)
	}
	self, err = e.client(a.Token).TokenSelf(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if self.Accessor != a.Accessor || self.Expires == nil || self.UsesLeft == nil {
		t.Errorf("TokenSelf = %+v, want a's info with expiry and uses", self)
	}
	rootSelf, err := root.TokenSelf(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rootSelf.Name != "root" || !slices.Equal(rootSelf.Rules, []string{"admin:**"}) {
		t.Errorf("root TokenSelf = %+v", rootSelf)
	}
}

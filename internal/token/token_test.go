package token_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/privyhq/privy/internal/policy"
	"github.com/privyhq/privy/internal/store"
	"github.com/privyhq/privy/internal/store/memstore"
	"github.com/privyhq/privy/internal/token"
)

func mustPolicy(t *testing.T, rules ...string) policy.Policy {
	t.Helper()
	p, err := policy.ParsePolicy(rules)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGenerateAndAccessor(t *testing.T) {
	a, err := token.Generate()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := token.Generate()
	if a == b {
		t.Fatal("two generated tokens are equal")
	}
	if !strings.HasPrefix(a, token.Prefix) || len(a) != len(token.Prefix)+43 {
		t.Errorf("got token of length %d with prefix %q, want %q + 43 base64url characters", len(a), a[:4], token.Prefix)
	}
	if token.Accessor(a) != token.Accessor(a) {
		t.Error("accessor is not deterministic")
	}
	if token.Accessor(a) == token.Accessor(b) {
		t.Error("different tokens share an accessor")
	}
	if strings.Contains(a, token.Accessor(a)) {
		t.Error("the accessor is a substring of the token")
	}
}

func TestCreateStoresOnlyTheHash(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	now := time.Unix(1_700_000_000, 0)
	tok, rec, err := token.Create(ctx, s, token.Spec{Name: "ci", Policy: mustPolicy(t, "read:app/**"), TTL: time.Hour}, now)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.GetRecord(ctx, token.Kind, rec.Accessor)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(r.Value), tok) || strings.Contains(string(r.Value), strings.TrimPrefix(tok, token.Prefix)) {
		t.Fatal("the stored record contains the token")
	}
	var got token.Record
	if err := json.Unmarshal(r.Value, &got); err != nil {
		t.Fatal(err)
	}
	if got.Accessor != token.Accessor(tok) || !got.Expires.Equal(now.Add(time.Hour)) || got.Name != "ci" {
		t.Errorf("got record %+v", got)
	}
}

func TestCreateRejects(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	for _, spec := range []token.Spec{
		{},
		{Policy: mustPolicy(t, "read:**"), Uses: -1},
		{Policy: mustPolicy(t, "read:**"), TTL: -time.Second},
	} {
		if _, _, err := token.Create(ctx, s, spec, time.Now()); err == nil {
			t.Errorf("Create(%+v) succeeded, want an error", spec)
		}
	}
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	now := time.Unix(1_700_000_000, 0)
	tok, _, err := token.Create(ctx, s, token.Spec{Policy: mustPolicy(t, "read:**"), TTL: time.Minute}, now)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := token.Generate()
	tests := []struct {
		name string
		tok  string
		at   time.Time
		want error
	}{
		{"valid", tok, now, nil},
		{"just before expiry", tok, now.Add(time.Minute - time.Nanosecond), nil},
		{"at expiry", tok, now.Add(time.Minute), token.ErrExpired},
		{"unknown", other, now, token.ErrUnknown},
		{"malformed", "pvt_short", now, token.ErrMalformed},
		{"no prefix", strings.TrimPrefix(tok, token.Prefix), now, token.ErrMalformed},
		{"one character changed", tok[:len(tok)-1] + flip(tok[len(tok)-1]), now, token.ErrUnknown},
	}
	for _, tt := range tests {
		_, err := token.Check(ctx, s, tt.tok, tt.at)
		if !errors.Is(err, tt.want) && !(err == nil && tt.want == nil) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func TestCheckChargesUsesOnce(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	const uses = 7
	tok, rec, err := token.Create(ctx, s, token.Spec{Policy: mustPolicy(t, "read:**"), Uses: uses}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			_, err := token.Check(ctx, s, tok, time.Now())
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, token.ErrUnknown), errors.Is(err, token.ErrUsedUp):
			default:
				t.Errorf("Check: %v", err)
			}
		})
	}
	wg.Wait()
	if got := ok.Load(); got != uses {
		t.Errorf("got %d successful checks, want exactly %d", got, uses)
	}
	if _, err := s.GetRecord(ctx, token.Kind, rec.Accessor); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a used-up token's record is still stored (err %v)", err)
	}
}

func TestRevokeAndList(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	tok, rec, _ := token.Create(ctx, s, token.Spec{Policy: mustPolicy(t, "read:**")}, time.Now())
	token.Create(ctx, s, token.Spec{Policy: mustPolicy(t, "list:**")}, time.Now())
	recs, err := token.List(ctx, s)
	if err != nil || len(recs) != 2 {
		t.Fatalf("List: got %d records, %v; want 2", len(recs), err)
	}
	if err := token.Revoke(ctx, s, rec.Accessor); err != nil {
		t.Fatal(err)
	}
	if _, err := token.Check(ctx, s, tok, time.Now()); !errors.Is(err, token.ErrUnknown) {
		t.Errorf("Check after Revoke: got %v, want ErrUnknown", err)
	}
	if err := token.Revoke(ctx, s, rec.Accessor); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second Revoke: got %v, want store.ErrNotFound", err)
	}
}

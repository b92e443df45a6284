// Package token issues and checks privy's bearer tokens.
//
// A token is 256 random bits, shown to its owner once and never stored: the
// store keeps only its SHA-256 hash inside a record keyed by its accessor.
// The accessor is a one-way function of the token, so a request presenting a
// token is looked up with one record read, while the accessor itself is safe
// to log, list and use for revocation.
package token

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/privyhq/privy/internal/policy"
	"github.com/privyhq/privy/internal/store"
)

// Kind is the store record kind that holds tokens.
const Kind = "token"

// Prefix starts every token, so that leaked tokens are easy to recognise.
const Prefix = "pvt_"

// Errors returned by Check. They all mean "unauthenticated" to a client; the
// distinction is kept for the audit log and for hints.
var (
	ErrMalformed = errors.New("malformed token")
	ErrUnknown   = errors.New("unknown or revoked token")
	ErrExpired   = errors.New("token expired")
	ErrUsedUp    = errors.New("token has no uses left")
)

// Record is what the store keeps about a token.
type Record struct {
	Accessor  string        `json:"accessor"`
	Hash      string        `json:"hash"` // hex SHA-256 of the token
	Name      string        `json:"name,omitempty"`
	Policy    policy.Policy `json:"rules"`
	Created   time.Time     `json:"created"`
	Expires   time.Time     `json:"expires,omitzero"`
	UsesLeft  int           `json:"uses_left,omitempty"` // 0 = unlimited
	CreatedBy string        `json:"created_by,omitempty"`
}

// Spec describes a token to create.
type Spec struct {
	Name      string
	Policy    policy.Policy
	TTL       time.Duration // 0 = no expiry
	Uses      int           // 0 = unlimited
	CreatedBy string
}

// Generate returns a new random token.
func Generate() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating token: %w", err)
	}
	return Prefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Accessor returns the public accessor of a token.
func Accessor(tok string) string {
	h := sha256.Sum256([]byte("privy-token-accessor\x00" + tok))
	return hex.EncodeToString(h[:12])
}

func hash(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// wellFormed reports whether tok has the shape of a privy token.
func wellFormed(tok string) bool {
	rest, ok := strings.CutPrefix(tok, Prefix)
	if !ok || len(rest) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(rest)
	return err == nil
}

// Create stores a new token and returns it with its record. The token string
// is returned only here.
func Create(ctx context.Context, s store.Store, spec Spec, now time.Time) (string, Record, error) {
	if len(spec.Policy) == 0 {
		return "", Record{}, errors.New("creating token: no rules; give at least one --allow CAPS:GLOB")
	}
	if spec.Uses < 0 {
		return "", Record{}, errors.New("creating token: uses must not be negative")
	}
	if spec.TTL < 0 {
		return "", Record{}, errors.New("creating token: ttl must not be negative")
	}
	tok, err := Generate()
	if err != nil {
		return "", Record{}, err
	}
	rec := Record{
		Accessor:  Accessor(tok),
		Hash:      hash(tok),
		Name:      spec.Name,
		Policy:    spec.Policy,
		Created:   now.UTC(),
		UsesLeft:  spec.Uses,
		CreatedBy: spec.CreatedBy,
	}
	if spec.TTL > 0 {
		rec.Expires = now.Add(spec.TTL).UTC()
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return "", Record{}, fmt.Errorf("creating token: %w", err)
	}
	if _, err := s.PutRecord(ctx, Kind, rec.Accessor, b, 0); err != nil {
		return "", Record{}, fmt.Errorf("creating token: %w", err)
	}
	return tok, rec, nil
}

// Check authenticates tok: it must exist, match its stored hash, not be
// expired and have uses left. A token with a use count is charged one use;
// its record is deleted when the last use is spent.
func Check(ctx context.Context, s store.Store, tok string, now time.Time) (Record, error) {
	if !wellFormed(tok) {
		return Record{}, ErrMalformed
	}
	acc := Accessor(tok)
	for {
		r, err := s.GetRecord(ctx, Kind, acc)
		if errors.Is(err, store.ErrNotFound) {
			return Record{}, ErrUnknown
		}
		if err != nil {
			return Record{}, fmt.Errorf("looking up token %s: %w", acc, err)
		}
		var rec Record
		if err := json.Unmarshal(r.Value, &rec); err != nil {
			return Record{}, fmt.Errorf("decoding token record %s: %w", acc, err)
		}
		if subtle.ConstantTimeCompare([]byte(rec.Hash), []byte(hash(tok))) != 1 {
			return Record{}, ErrUnknown
		}
		if !rec.Expires.IsZero() && !now.Before(rec.Expires) {
			return Record{}, ErrExpired
		}
		if rec.UsesLeft == 0 {
			return rec, nil
		}
		// Charge one use with compare-and-swap so concurrent requests cannot
		// spend the same use twice.
		if rec.UsesLeft == 1 {
			err = s.DeleteRecord(ctx, Kind, acc, r.Revision)
		} else {
			next := rec
			next.UsesLeft--
			var b []byte
			if b, err = json.Marshal(next); err == nil {
				_, err = s.PutRecord(ctx, Kind, acc, b, r.Revision)
			}
		}
		switch {
		case err == nil:
			return rec, nil
		case errors.Is(err, store.ErrConflict):
			continue
		case errors.Is(err, store.ErrNotFound):
			return Record{}, ErrUsedUp
		default:
			return Record{}, fmt.Errorf("charging token %s: %w", acc, err)
		}
	}
}

// List returns every stored token record, sorted by accessor.
func List(ctx context.Context, s store.Store) ([]Record, error) {
	rs, err := s.ListRecords(ctx, Kind)
	if err != nil {
		return nil, fmt.Errorf("listing tokens: %w", err)
	}
	out := make([]Record, 0, len(rs))
	for _, r := range rs {
		var rec Record
		if err := json.Unmarshal(r.Value, &rec); err != nil {
			return nil, fmt.Errorf("decoding token record %s: %w", r.Key, err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// Revoke deletes the token with the given accessor. It returns
// store.ErrNotFound if there is none.
func Revoke(ctx context.Context, s store.Store, accessor string) error {
	if err := s.DeleteRecord(ctx, Kind, accessor, store.AnyRevision); err != nil {
		return fmt.Errorf("revoking token %s: %w", accessor, err)
	}
	return nil
}

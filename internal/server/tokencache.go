package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"sync"
	"time"

	"github.com/privyhq/privy/internal/token"
)

// tokenCache remembers recently checked tokens without use limits, so that
// a busy client does not cost a store read and a JSON decode per request.
// It keys entries by accessor and keeps the SHA-256 of the token, so a hit
// still needs the presented token itself. Revocation through this server
// removes the entry at once; maxAge bounds how long a change made by anyone
// else to the store can go unseen.
type tokenCache struct {
	mu      sync.RWMutex
	entries map[string]cachedToken
	// gen counts revocations; a record checked before a revocation is not
	// cached after it.
	gen uint64
}

type cachedToken struct {
	hash   [32]byte
	rec    token.Record
	loaded time.Time
}

const (
	tokenCacheSize = 4096
	// A token revoked through another server sharing the store is refused
	// here within this long.
	tokenCacheMaxAge = 400 * time.Millisecond
)

// get returns the cached record of tok if it is fresh and not expired.
func (c *tokenCache) get(tok string, now time.Time) (token.Record, bool) {
	acc := token.Accessor(tok)
	c.mu.RLock()
	e, ok := c.entries[acc]
	c.mu.RUnlock()
	if !ok || now.Sub(e.loaded) > tokenCacheMaxAge || now.Before(e.loaded) {
		return token.Record{}, false
	}
	h := sha256.Sum256([]byte(tok))
	if subtle.ConstantTimeCompare(h[:], e.hash[:]) != 1 {
		return token.Record{}, false
	}
	if !e.rec.Expires.IsZero() && !now.Before(e.rec.Expires) {
		return token.Record{}, false
	}
	return e.rec, true
}

// generation returns the revocation count, to pass to put.
func (c *tokenCache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// put caches a record checked when the revocation count was gen; tokens with
// a use count are never cached, since every use must be charged in the store.
func (c *tokenCache) put(tok string, rec token.Record, now time.Time, gen uint64) {
	if rec.UsesLeft != 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if c.entries == nil || len(c.entries) >= tokenCacheSize {
		c.entries = make(map[string]cachedToken)
	}
	c.entries[rec.Accessor] = cachedToken{hash: sha256.Sum256([]byte(tok)), rec: rec, loaded: now}
}

// forget drops an accessor, for revocation.
func (c *tokenCache) forget(accessor string) {
	c.mu.Lock()
	delete(c.entries, accessor)
	c.gen++
	c.mu.Unlock()
}

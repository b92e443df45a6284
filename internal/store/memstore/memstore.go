// Package memstore is an in-memory store.Store for `privy server --dev` and
// tests. Nothing survives the process; every byte slice is copied in and out,
// so callers and the store never share memory.
package memstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/privyhq/privy/internal/store"
)

// Store is an in-memory store.Store. The zero value is not usable; call New.
type Store struct {
	mu      sync.RWMutex
	closed  bool
	secrets map[string]*secret
	records map[string]map[string]store.Record // kind → key → record
	rev     int64                              // last record revision handed out
}

// secret is every kept version of one path.
type secret struct {
	latest   int // highest version ever stored; kept even when pruned
	hidden   bool
	versions []version // oldest first
}

type version struct {
	number   int
	created  time.Time
	envelope []byte
}

var _ store.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{
		secrets: map[string]*secret{},
		records: map[string]map[string]store.Record{},
	}
}

// begin checks ctx and the closed flag; call it with s.mu held.
func (s *Store) begin(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed {
		return store.ErrClosed
	}
	return nil
}

// Put implements store.Store.
func (s *Store) Put(ctx context.Context, path string, opts store.PutOptions, seal store.SealFunc) (store.VersionMeta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(ctx); err != nil {
		return store.VersionMeta{}, err
	}
	sec := s.secrets[path]
	next := 1
	if sec != nil {
		next = sec.latest + 1
	}
	envelope, err := seal(next)
	if err != nil {
		return store.VersionMeta{}, err
	}
	if sec == nil {
		sec = &secret{}
		s.secrets[path] = sec
	}
	v := version{number: next, created: time.Now().Round(0), envelope: clone(envelope)}
	sec.latest, sec.hidden = next, false
	sec.versions = append(sec.versions, v)
	max := opts.MaxVersions
	if max <= 0 {
		max = store.DefaultMaxVersions
	}
	if n := len(sec.versions) - max; n > 0 {
		sec.versions = slices.Delete(sec.versions, 0, n)
	}
	return store.VersionMeta{Version: next, Created: v.created, Size: len(v.envelope)}, nil
}

// visible returns the secret at path unless it is missing or hidden.
func (s *Store) visible(path string) (*secret, error) {
	sec := s.secrets[path]
	if sec == nil || sec.hidden {
		return nil, fmt.Errorf("secret %q: %w", path, store.ErrNotFound)
	}
	return sec, nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, path string, number int) (store.Version, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.begin(ctx); err != nil {
		return store.Version{}, err
	}
	sec, err := s.visible(path)
	if err != nil {
		return store.Version{}, err
	}
	if number == 0 {
		number = sec.latest
	}
	i, ok := slices.BinarySearchFunc(sec.versions, number, func(v version, n int) int { return cmp.Compare(v.number, n) })
	if !ok {
		return store.Version{}, fmt.Errorf("secret %q version %d: %w", path, number, store.ErrNotFound)
	}
	v := sec.versions[i]
	return store.Version{Path: path, Version: v.number, Created: v.created, Envelope: clone(v.envelope)}, nil
}

// List implements store.Store.
func (s *Store) List(ctx context.Context, prefix string) ([]store.Meta, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	var list []store.Meta
	for path, sec := range s.secrets {
		if sec.hidden || !strings.HasPrefix(path, prefix) {
			continue
		}
		v := sec.versions[len(sec.versions)-1]
		list = append(list, store.Meta{Path: path, Version: v.number, Created: v.created, Size: len(v.envelope)})
	}
	slices.SortFunc(list, func(a, b store.Meta) int { return strings.Compare(a.Path, b.Path) })
	return list, nil
}

// History implements store.Store.
func (s *Store) History(ctx context.Context, path string) ([]store.VersionMeta, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	sec, err := s.visible(path)
	if err != nil {
		return nil, err
	}
	h := make([]store.VersionMeta, len(sec.versions))
	for i, v := range sec.versions {
		h[i] = store.VersionMeta{Version: v.number, Created: v.created, Size: len(v.envelope)}
	}
	return h, nil
}

// Hide implements store.Store.
func (s *Store) Hide(ctx context.Context, path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(ctx); err != nil {
		return err
	}
	sec, err := s.visible(path)
	if err != nil {
		return err
	}
	sec.hidden = true
	return nil
}

// Destroy implements store.Store.
func (s *Store) Destroy(ctx context.Context, path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(ctx); err != nil {
		return err
	}
	if s.secrets[path] == nil {
		return fmt.Errorf("secret %q: %w", path, store.ErrNotFound)
	}
	delete(s.secrets, path)
	return nil
}

// Rewrap implements store.Store. It computes every new envelope before
// replacing any, so a failing fn leaves the store as it was.
func (s *Store) Rewrap(ctx context.Context, fn store.RewrapFunc) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	paths := make([]string, 0, len(s.secrets))
	for p := range s.secrets {
		paths = append(paths, p)
	}
	slices.Sort(paths) // a deterministic order makes failures reproducible
	type change struct {
		v        *version
		envelope []byte
	}
	var changes []change
	for _, p := range paths {
		sec := s.secrets[p]
		for i := range sec.versions {
			v := &sec.versions[i]
			e, err := fn(p, v.number, clone(v.envelope))
			if err != nil {
				return 0, fmt.Errorf("rewrapping secret %q version %d: %w", p, v.number, err)
			}
			changes = append(changes, change{v, clone(e)})
		}
	}
	for _, c := range changes {
		c.v.envelope = c.envelope
	}
	return len(changes), nil
}

// GetRecord implements store.Store.
func (s *Store) GetRecord(ctx context.Context, kind, key string) (store.Record, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.begin(ctx); err != nil {
		return store.Record{}, err
	}
	r, ok := s.records[kind][key]
	if !ok {
		return store.Record{}, fmt.Errorf("record %s/%s: %w", kind, key, store.ErrNotFound)
	}
	r.Value = clone(r.Value)
	return r, nil
}

// PutRecord implements store.Store.
func (s *Store) PutRecord(ctx context.Context, kind, key string, value []byte, prev int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	cur, ok := s.records[kind][key]
	if prev != store.AnyRevision && prev != cur.Revision { // a missing record has revision 0
		return 0, fmt.Errorf("writing record %s/%s at revision %d (current %d): %w", kind, key, prev, cur.Revision, store.ErrConflict)
	}
	if !ok && s.records[kind] == nil {
		s.records[kind] = map[string]store.Record{}
	}
	s.rev++
	s.records[kind][key] = store.Record{Kind: kind, Key: key, Value: clone(value), Revision: s.rev}
	return s.rev, nil
}

// DeleteRecord implements store.Store.
func (s *Store) DeleteRecord(ctx context.Context, kind, key string, prev int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(ctx); err != nil {
		return err
	}
	if prev == 0 {
		return errors.New("deleting record: revision 0 is not allowed; use store.AnyRevision")
	}
	cur, ok := s.records[kind][key]
	switch {
	case !ok:
		return fmt.Errorf("deleting record %s/%s: %w", kind, key, store.ErrNotFound)
	case prev != store.AnyRevision && prev != cur.Revision:
		return fmt.Errorf("deleting record %s/%s at revision %d (current %d): %w", kind, key, prev, cur.Revision, store.ErrConflict)
	}
	delete(s.records[kind], key)
	if len(s.records[kind]) == 0 {
		delete(s.records, kind)
	}
	return nil
}

// ListRecords implements store.Store.
func (s *Store) ListRecords(ctx context.Context, kind string) ([]store.Record, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	list := make([]store.Record, 0, len(s.records[kind]))
	for _, r := range s.records[kind] {
		r.Value = clone(r.Value)
		list = append(list, r)
	}
	slices.SortFunc(list, func(a, b store.Record) int { return strings.Compare(a.Key, b.Key) })
	return list, nil
}

// Close drops everything the store holds.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.closed = true
	s.secrets, s.records = nil, nil
	return nil
}

// clone copies b, keeping nil and empty apart from shared memory.
func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

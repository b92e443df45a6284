// Package boltstore is the embedded store.Store: one bbolt file on local disk,
// locked by a single process at a time. It keeps secrets, versions and
// records in flat buckets (see layout.go) so that reads stay fast and memory
// stays modest with a million secrets, and it group-commits concurrent Puts
// into one fsync.
package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/privyhq/privy/internal/store"
)

// ErrLocked means another process holds the store file open.
var ErrLocked = errors.New("store file is in use, probably by a running privy server; stop the server or go through its API")

// DefaultTimeout is how long Open waits for the file lock by default.
const DefaultTimeout = time.Second

// Store is a store.Store kept in a bbolt file. It is safe for concurrent use.
type Store struct {
	db     *bolt.DB
	path   string
	closed atomic.Bool
}

var _ store.Store = (*Store)(nil)

// Option tunes Open.
type Option func(*options)

type options struct {
	timeout time.Duration
}

// WithTimeout sets how long Open waits for another process to release the
// file lock before failing with ErrLocked; zero waits forever.
func WithTimeout(d time.Duration) Option {
	return func(o *options) { o.timeout = d }
}

// Open opens the store file at path, creating it (mode 0600) and its parent
// directory (mode 0700) if needed.
func Open(path string, opts ...Option) (*Store, error) {
	o := options{timeout: DefaultTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating the directory of store %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: o.timeout,
		// The map freelist stays fast when a large store has many free pages.
		FreelistType: bolt.FreelistMapType,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("opening store %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", path, err)
	}
	if err := db.Update(initialize); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening store %s: %w", path, err)
	}
	db.MaxBatchDelay = batchDelay
	return &Store{db: db, path: path}, nil
}

// batchDelay is how long a write waits for others to share its commit.
// bbolt's default of 10ms is what a lone writer would pay on every Put;
// under load the commit in progress gathers the next batch anyway.
const batchDelay = 2 * time.Millisecond

// initialize creates the buckets of a new file and checks the format of an
// existing one.
func initialize(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketSecrets, bucketVersions, bucketRecords, bucketSys} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("creating bucket %s: %w", name, err)
		}
	}
	sys := tx.Bucket(bucketSys)
	if f := sys.Get(keyFormat); f != nil {
		if len(f) != 4 || binary.BigEndian.Uint32(f) != formatVersion {
			return fmt.Errorf("file has store format %x; this privy reads format %d", f, formatVersion)
		}
		return nil
	}
	return sys.Put(keyFormat, binary.BigEndian.AppendUint32(nil, formatVersion))
}

// Path returns the file path the store was opened with.
func (s *Store) Path() string { return s.path }

// Close releases the file and its lock.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return store.ErrClosed
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing store %s: %w", s.path, err)
	}
	return nil
}

// begin checks ctx and whether the store is closed before a call.
func (s *Store) begin(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return store.ErrClosed
	}
	return nil
}

// fail wraps an error from bbolt, turning a close that raced the call into
// store.ErrClosed.
func fail(err error, format string, args ...any) error {
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		err = store.ErrClosed
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}

// Put implements store.Store. Concurrent Puts share one transaction and one
// fsync. The seal error is kept out of the transaction's error so that it
// does not make bbolt roll back and re-run the rest of the batch.
func (s *Store) Put(ctx context.Context, path string, opts store.PutOptions, seal store.SealFunc) (store.VersionMeta, error) {
	if err := s.begin(ctx); err != nil {
		return store.VersionMeta{}, err
	}
	keep := opts.MaxVersions
	if keep <= 0 {
		keep = store.DefaultMaxVersions
	}
	var (
		vm      store.VersionMeta
		sealErr error
	)
	err := s.db.Batch(func(tx *bolt.Tx) error {
		vm, sealErr = store.VersionMeta{}, nil // bbolt may call this more than once
		m, ok, err := getMeta(tx, path)
		if err != nil {
			return err
		}
		if !ok {
			m = meta{oldest: 1}
		}
		if m.latest == math.MaxUint32 {
			return fmt.Errorf("secret has reached the last version number %d; destroy it to start again", m.latest)
		}
		next := m.latest + 1
		envelope, err := seal(int(next))
		if err != nil {
			sealErr = err // nothing is written yet
			return nil
		}
		created := time.Now().UnixNano()
		versions := tx.Bucket(bucketVersions)
		if err := versions.Put(versionKey(path, next), encodeVersion(created, envelope)); err != nil {
			return err
		}
		m.hidden, m.latest, m.created, m.size = false, next, created, uint32(len(envelope))
		if low := int64(next) - int64(keep) + 1; low > int64(m.oldest) {
			for v := m.oldest; int64(v) < low; v++ {
				if err := versions.Delete(versionKey(path, v)); err != nil {
					return err
				}
			}
			m.oldest = uint32(low)
		}
		if err := tx.Bucket(bucketSecrets).Put([]byte(path), m.encode()); err != nil {
			return err
		}
		vm = store.VersionMeta{Version: int(next), Created: unixNano(created), Size: len(envelope)}
		return nil
	})
	if err != nil {
		return store.VersionMeta{}, fail(err, "storing secret %q", path)
	}
	if sealErr != nil {
		return store.VersionMeta{}, sealErr
	}
	return vm, nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, path string, version int) (store.Version, error) {
	if err := s.begin(ctx); err != nil {
		return store.Version{}, err
	}
	var out store.Version
	err := s.db.View(func(tx *bolt.Tx) error {
		m, ok, err := getMeta(tx, path)
		if err != nil {
			return err
		}
		if !ok || m.hidden {
			return store.ErrNotFound
		}
		if version == 0 {
			version = int(m.latest)
		}
		v, ok := toVersion(version)
		if !ok || v < m.oldest || v > m.latest {
			return fmt.Errorf("version %d: %w", version, store.ErrNotFound)
		}
		raw := tx.Bucket(bucketVersions).Get(versionKey(path, v))
		if raw == nil {
			return fmt.Errorf("version %d is missing from the versions bucket; the file is damaged", v)
		}
		created, envelope, err := decodeVersion(raw)
		if err != nil {
			return err
		}
		out = store.Version{Path: path, Version: int(v), Created: unixNano(created), Envelope: bytes.Clone(envelope)}
		return nil
	})
	if err != nil {
		return store.Version{}, fail(err, "reading secret %q", path)
	}
	return out, nil
}

// List implements store.Store. It reads only the secrets bucket.
func (s *Store) List(ctx context.Context, prefix string) ([]store.Meta, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	var list []store.Meta
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSecrets).Cursor()
		p := []byte(prefix)
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			m, err := decodeMeta(v)
			if err != nil {
				return fmt.Errorf("secret %q: %w", k, err)
			}
			if m.hidden {
				continue
			}
			list = append(list, store.Meta{Path: string(k), Version: int(m.latest), Created: unixNano(m.created), Size: int(m.size)})
		}
		return nil
	})
	if err != nil {
		return nil, fail(err, "listing secrets under %q", prefix)
	}
	return list, nil
}

// History implements store.Store.
func (s *Store) History(ctx context.Context, path string) ([]store.VersionMeta, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	var h []store.VersionMeta
	err := s.db.View(func(tx *bolt.Tx) error {
		m, ok, err := getMeta(tx, path)
		if err != nil {
			return err
		}
		if !ok || m.hidden {
			return store.ErrNotFound
		}
		h = make([]store.VersionMeta, 0, m.latest-m.oldest+1)
		prefix := versionPrefix(path)
		c := tx.Bucket(bucketVersions).Cursor()
		for k, v := c.Seek(versionKey(path, m.oldest)); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			created, envelope, err := decodeVersion(v)
			if err != nil {
				return err
			}
			n := binary.BigEndian.Uint32(k[len(prefix):])
			h = append(h, store.VersionMeta{Version: int(n), Created: unixNano(created), Size: len(envelope)})
		}
		return nil
	})
	if err != nil {
		return nil, fail(err, "reading the history of secret %q", path)
	}
	return h, nil
}

// Hide implements store.Store.
func (s *Store) Hide(ctx context.Context, path string) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		m, ok, err := getMeta(tx, path)
		if err != nil {
			return err
		}
		if !ok || m.hidden {
			return store.ErrNotFound
		}
		m.hidden = true
		return tx.Bucket(bucketSecrets).Put([]byte(path), m.encode())
	})
	if err != nil {
		return fail(err, "hiding secret %q", path)
	}
	return nil
}

// Destroy implements store.Store.
func (s *Store) Destroy(ctx context.Context, path string) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		m, ok, err := getMeta(tx, path)
		if err != nil {
			return err
		}
		if !ok {
			return store.ErrNotFound
		}
		versions := tx.Bucket(bucketVersions)
		for v := m.oldest; v <= m.latest && v != 0; v++ {
			if err := versions.Delete(versionKey(path, v)); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketSecrets).Delete([]byte(path))
	})
	if err != nil {
		return fail(err, "destroying secret %q", path)
	}
	return nil
}

// rewrapCheckEvery is how many versions Rewrap rewrites between checks of
// its context.
const rewrapCheckEvery = 1024

// Rewrap implements store.Store in one write transaction, which a failing fn
// or a cancelled ctx rolls back. It holds the write lock throughout.
func (s *Store) Rewrap(ctx context.Context, fn store.RewrapFunc) (int, error) {
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	var n int
	err := s.db.Update(func(tx *bolt.Tx) error {
		n = 0
		versions, secrets := tx.Bucket(bucketVersions), tx.Bucket(bucketSecrets)
		c := versions.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if n%rewrapCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			key := bytes.Clone(k) // k is invalid once the bucket changes
			path, num, err := parseVersionKey(key)
			if err != nil {
				return err
			}
			created, envelope, err := decodeVersion(v)
			if err != nil {
				return fmt.Errorf("secret %q version %d: %w", path, num, err)
			}
			wrapped, err := fn(path, int(num), bytes.Clone(envelope))
			if err != nil {
				return fmt.Errorf("secret %q version %d: %w", path, num, err)
			}
			if err := versions.Put(key, encodeVersion(created, wrapped)); err != nil {
				return err
			}
			if m, ok, err := getMeta(tx, path); err != nil {
				return err
			} else if ok && m.latest == num && m.size != uint32(len(wrapped)) {
				m.size = uint32(len(wrapped))
				if err := secrets.Put([]byte(path), m.encode()); err != nil {
					return err
				}
			}
			n++
			c.Seek(key) // a Put invalidates the cursor; put it back
		}
		return nil
	})
	if err != nil {
		return 0, fail(err, "rewrapping secrets")
	}
	return n, nil
}

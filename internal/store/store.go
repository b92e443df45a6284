// Package store defines where privy keeps its state: versioned, sealed
// secrets and small metadata records (tokens, profiles, server settings).
//
// A Store never sees plaintext. Secret values reach it as envelopes produced
// by package seal, and it stores them as opaque bytes. Every backend (the
// in-memory store, the embedded bbolt file, the distributed etcd store) passes
// the same conformance suite in package storetest, so the semantics written
// here are the contract.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors returned by every Store. Callers test them with errors.Is.
var (
	// ErrNotFound means the secret, version or record does not exist, was
	// hidden, pruned or destroyed.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a compare-and-swap on a record's revision failed.
	ErrConflict = errors.New("revision conflict")
	// ErrClosed means the store was closed.
	ErrClosed = errors.New("store is closed")
	// ErrOutcomeUnknown means a change may or may not have been applied
	// (a distributed store lost contact at its commit); read to find out.
	ErrOutcomeUnknown = errors.New("outcome unknown")
)

// DefaultMaxVersions is how many versions of a secret are kept when
// PutOptions.MaxVersions is zero.
const DefaultMaxVersions = 10

// AnyRevision makes PutRecord and DeleteRecord unconditional.
const AnyRevision int64 = -1

// Meta describes a secret as a whole.
type Meta struct {
	Path    string
	Version int       // the latest version
	Created time.Time // when the latest version was stored
	Size    int       // length of the latest envelope in bytes
}

// VersionMeta describes one kept version of a secret.
type VersionMeta struct {
	Version int
	Created time.Time
	Size    int // length of the envelope in bytes
}

// Version is one stored version of a secret with its sealed envelope.
type Version struct {
	Path     string
	Version  int
	Created  time.Time
	Envelope []byte
}

// PutOptions tune Put.
type PutOptions struct {
	// MaxVersions is how many versions to keep, newest first; older ones are
	// erased by the same Put. Zero means DefaultMaxVersions.
	MaxVersions int
}

// SealFunc returns the envelope for the version number a Put is about to
// create. The number is bound into the envelope, so it must be known before
// sealing. A SealFunc may be called more than once if a backend retries.
type SealFunc func(version int) ([]byte, error)

// RewrapFunc returns the replacement envelope for one stored version.
type RewrapFunc func(path string, version int, envelope []byte) ([]byte, error)

// Record is a small metadata document, addressed by kind and key.
type Record struct {
	Kind     string
	Key      string
	Value    []byte
	Revision int64 // changes on every write; never 0 for a stored record
}

// Store keeps versioned sealed secrets and metadata records. Paths are
// validated by the caller with ValidatePath; a Store may assume valid paths.
// All methods are safe for concurrent use.
type Store interface {
	// Put stores a new version of the secret at path. Versions count up from
	// 1 and are never reused for a path, even after Hide; after Destroy the
	// path starts again at 1. Put calls seal with the new version number and
	// stores what it returns; if seal fails, nothing is stored and its error
	// is returned. A hidden secret becomes visible again. Versions beyond
	// opts.MaxVersions are erased in the same atomic step.
	Put(ctx context.Context, path string, opts PutOptions, seal SealFunc) (VersionMeta, error)

	// Get returns one version of a visible secret; version 0 means the
	// latest. It returns ErrNotFound for a missing, hidden or destroyed
	// secret and for a version that was never stored or has been pruned.
	Get(ctx context.Context, path string, version int) (Version, error)

	// List returns every visible secret whose path starts with prefix (a
	// plain string prefix; "" lists everything), sorted by path.
	List(ctx context.Context, prefix string) ([]Meta, error)

	// History returns the kept versions of a visible secret, oldest first,
	// or ErrNotFound.
	History(ctx context.Context, path string) ([]VersionMeta, error)

	// Hide makes a visible secret invisible to Get, List and History while
	// keeping its versions; the next Put makes it visible again with the
	// next version number. It returns ErrNotFound if no visible secret exists.
	Hide(ctx context.Context, path string) error

	// Destroy erases every version of the secret at path, hidden or not.
	// It returns ErrNotFound if nothing is stored there.
	Destroy(ctx context.Context, path string) error

	// Rewrap replaces the envelope of every stored version (hidden ones
	// included) with what fn returns, as one atomic change: if fn fails for
	// any version, nothing changes. It returns how many versions it rewrote.
	Rewrap(ctx context.Context, fn RewrapFunc) (int, error)

	// GetRecord returns a record or ErrNotFound.
	GetRecord(ctx context.Context, kind, key string) (Record, error)

	// PutRecord writes a record if its current revision equals prev: 0 means
	// the record must not exist yet, AnyRevision writes unconditionally. It
	// returns the new revision, or ErrConflict without writing.
	PutRecord(ctx context.Context, kind, key string, value []byte, prev int64) (int64, error)

	// DeleteRecord removes a record under the same rule as PutRecord
	// (prev 0 is not allowed here; use AnyRevision). It returns ErrNotFound
	// if the record does not exist and ErrConflict on a revision mismatch.
	DeleteRecord(ctx context.Context, kind, key string, prev int64) error

	// ListRecords returns every record of a kind, sorted by key.
	ListRecords(ctx context.Context, kind string) ([]Record, error)

	// Close releases the store. Calls after Close return ErrClosed.
	Close() error
}

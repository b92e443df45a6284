package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/privyhq/privy/internal/store"
)

// errDeleteRevisionZero is returned by DeleteRecord for prev 0, which the
// contract does not allow.
var errDeleteRevisionZero = errors.New("revision 0 is not allowed; use store.AnyRevision")

// GetRecord implements store.Store.
func (s *Store) GetRecord(ctx context.Context, kind, key string) (store.Record, error) {
	if err := s.begin(ctx); err != nil {
		return store.Record{}, err
	}
	k, err := recordKey(kind, key)
	if err != nil {
		return store.Record{}, fmt.Errorf("reading record %s/%s: %w", kind, key, err)
	}
	var r store.Record
	err = s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketRecords).Get(k)
		if raw == nil {
			return store.ErrNotFound
		}
		rev, value, err := decodeRecord(raw)
		if err != nil {
			return err
		}
		r = store.Record{Kind: kind, Key: key, Value: bytes.Clone(value), Revision: rev}
		return nil
	})
	if err != nil {
		return store.Record{}, fail(err, "reading record %s/%s", kind, key)
	}
	return r, nil
}

// PutRecord implements store.Store. Like Put it is batched, and a conflict is
// kept out of the transaction's error so the rest of the batch commits.
func (s *Store) PutRecord(ctx context.Context, kind, key string, value []byte, prev int64) (int64, error) {
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	k, err := recordKey(kind, key)
	if err != nil {
		return 0, fmt.Errorf("writing record %s/%s: %w", kind, key, err)
	}
	var (
		rev      int64
		conflict error
	)
	err = s.db.Batch(func(tx *bolt.Tx) error {
		rev, conflict = 0, nil // bbolt may call this more than once
		records := tx.Bucket(bucketRecords)
		var cur int64 // a missing record has revision 0
		if raw := records.Get(k); raw != nil {
			var err error
			if cur, _, err = decodeRecord(raw); err != nil {
				return err
			}
		}
		if prev != store.AnyRevision && prev != cur {
			conflict = fmt.Errorf("at revision %d (current %d): %w", prev, cur, store.ErrConflict)
			return nil
		}
		next, err := nextRevision(tx)
		if err != nil {
			return err
		}
		if err := records.Put(k, encodeRecord(next, value)); err != nil {
			return err
		}
		rev = next
		return nil
	})
	if err == nil {
		err = conflict
	}
	if err != nil {
		return 0, fail(err, "writing record %s/%s", kind, key)
	}
	return rev, nil
}

// nextRevision bumps and returns the store-wide record revision, so that a
// record deleted and created again never repeats a revision.
func nextRevision(tx *bolt.Tx) (int64, error) {
	sys := tx.Bucket(bucketSys)
	var last int64
	if b := sys.Get(keyRevision); len(b) == 8 {
		last = int64(binary.BigEndian.Uint64(b))
	}
	next := last + 1
	if err := sys.Put(keyRevision, binary.BigEndian.AppendUint64(nil, uint64(next))); err != nil {
		return 0, err
	}
	return next, nil
}

// DeleteRecord implements store.Store.
func (s *Store) DeleteRecord(ctx context.Context, kind, key string, prev int64) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	if prev == 0 {
		return fmt.Errorf("deleting record %s/%s: %w", kind, key, errDeleteRevisionZero)
	}
	k, err := recordKey(kind, key)
	if err != nil {
		return fmt.Errorf("deleting record %s/%s: %w", kind, key, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		records := tx.Bucket(bucketRecords)
		raw := records.Get(k)
		if raw == nil {
			return store.ErrNotFound
		}
		cur, _, err := decodeRecord(raw)
		if err != nil {
			return err
		}
		if prev != store.AnyRevision && prev != cur {
			return fmt.Errorf("at revision %d (current %d): %w", prev, cur, store.ErrConflict)
		}
		return records.Delete(k)
	})
	if err != nil {
		return fail(err, "deleting record %s/%s", kind, key)
	}
	return nil
}

// ListRecords implements store.Store.
func (s *Store) ListRecords(ctx context.Context, kind string) ([]store.Record, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	prefix, err := recordKey(kind, "")
	if err != nil {
		return nil, fmt.Errorf("listing records of kind %s: %w", kind, err)
	}
	var list []store.Record
	err = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRecords).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			rev, value, err := decodeRecord(v)
			if err != nil {
				return err
			}
			list = append(list, store.Record{Kind: kind, Key: string(k[len(prefix):]), Value: bytes.Clone(value), Revision: rev})
		}
		return nil
	})
	if err != nil {
		return nil, fail(err, "listing records of kind %s", kind)
	}
	return list, nil
}

package etcdstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/privyhq/privy/internal/store"
)

// errDeleteRevisionZero is returned by DeleteRecord for prev 0, which the
// contract does not allow.
var errDeleteRevisionZero = errors.New("revision 0 is not allowed; use store.AnyRevision")

// recordKey builds the key of a record, refusing kinds that would make
// keys ambiguous.
func (s *Store) recordKey(kind, key string) (string, error) {
	if strings.IndexByte(kind, 0) >= 0 {
		return "", fmt.Errorf("record kind %q contains a NUL byte; use a plain name", kind)
	}
	return s.k.record(kind, key), nil
}

// GetRecord implements store.Store.
func (s *Store) GetRecord(ctx context.Context, kind, key string) (store.Record, error) {
	if err := s.begin(ctx); err != nil {
		return store.Record{}, err
	}
	k, err := s.recordKey(kind, key)
	if err != nil {
		return store.Record{}, fmt.Errorf("reading record %s/%s: %w", kind, key, err)
	}
	resp, err := s.readTxn(ctx, clientv3.OpGet(k))
	if err != nil {
		return store.Record{}, s.fail(err, "reading record %s/%s", kind, key)
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return store.Record{}, fmt.Errorf("reading record %s/%s: %w", kind, key, store.ErrNotFound)
	}
	return store.Record{Kind: kind, Key: key, Value: bytes.Clone(kvs[0].Value), Revision: kvs[0].ModRevision}, nil
}

// PutRecord implements store.Store in one transaction: the write holds only
// if the key's ModRevision is prev (0 for a missing key).
func (s *Store) PutRecord(ctx context.Context, kind, key string, value []byte, prev int64) (int64, error) {
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	k, err := s.recordKey(kind, key)
	if err != nil {
		return 0, fmt.Errorf("writing record %s/%s: %w", kind, key, err)
	}
	if len(value) > MaxValueSize {
		return 0, fmt.Errorf("writing record %s/%s: %w", kind, key, tooLarge("the value", len(value)))
	}
	txn := s.cli.Txn(ctx)
	if prev != store.AnyRevision {
		txn = txn.If(clientv3.Compare(clientv3.ModRevision(k), "=", prev))
	}
	resp, err := txn.Then(clientv3.OpPut(k, string(value))).Else(clientv3.OpGet(k, clientv3.WithKeysOnly())).Commit()
	if err != nil {
		return 0, s.fail(err, "writing record %s/%s", kind, key)
	}
	if !resp.Succeeded {
		var cur int64
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			cur = kvs[0].ModRevision
		}
		return 0, fmt.Errorf("writing record %s/%s at revision %d (current %d): %w", kind, key, prev, cur, store.ErrConflict)
	}
	// A write transaction's revision is the ModRevision of what it wrote.
	return resp.Header.Revision, nil
}

// DeleteRecord implements store.Store.
func (s *Store) DeleteRecord(ctx context.Context, kind, key string, prev int64) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	if prev == 0 {
		return fmt.Errorf("deleting record %s/%s: %w", kind, key, errDeleteRevisionZero)
	}
	k, err := s.recordKey(kind, key)
	if err != nil {
		return fmt.Errorf("deleting record %s/%s: %w", kind, key, err)
	}
	cmp := clientv3.Compare(clientv3.CreateRevision(k), ">", 0)
	if prev != store.AnyRevision {
		cmp = clientv3.Compare(clientv3.ModRevision(k), "=", prev)
	}
	resp, err := s.cli.Txn(ctx).If(cmp).Then(clientv3.OpDelete(k)).Else(clientv3.OpGet(k, clientv3.WithKeysOnly())).Commit()
	if err != nil {
		return s.fail(err, "deleting record %s/%s", kind, key)
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return fmt.Errorf("deleting record %s/%s: %w", kind, key, store.ErrNotFound)
	}
	return fmt.Errorf("deleting record %s/%s at revision %d (current %d): %w", kind, key, prev, kvs[0].ModRevision, store.ErrConflict)
}

// ListRecords implements store.Store.
func (s *Store) ListRecords(ctx context.Context, kind string) ([]store.Record, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	prefix, err := s.recordKey(kind, "")
	if err != nil {
		return nil, fmt.Errorf("listing records of kind %s: %w", kind, err)
	}
	var list []store.Record
	err = s.scan(ctx, prefix, clientv3.GetPrefixRangeEnd(prefix), listPage, func(kv *mvccpb.KeyValue) error {
		list = append(list, store.Record{Kind: kind, Key: string(kv.Key[len(prefix):]), Value: bytes.Clone(kv.Value), Revision: kv.ModRevision})
		return nil
	})
	if err != nil {
		return nil, s.fail(err, "listing records of kind %s", kind)
	}
	return list, nil
}

package etcdstore

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/privyhq/privy/internal/store"
)

// metaOf decodes the meta in a range response; ok is false if the secret
// does not exist. modRev is the meta key's ModRevision, 0 if it is missing.
func metaOf(r *pb.ResponseOp) (m meta, modRev int64, ok bool, err error) {
	kvs := r.GetResponseRange().Kvs
	if len(kvs) == 0 {
		return meta{}, 0, false, nil
	}
	m, err = decodeMeta(kvs[0].Value)
	return m, kvs[0].ModRevision, err == nil, err
}

// Put implements store.Store. It reads the meta, seals the next version and
// writes the version, the new meta and the pruning in one transaction that
// holds only if the meta is unchanged; otherwise it starts again, calling
// seal again with the new number.
func (s *Store) Put(ctx context.Context, path string, opts store.PutOptions, seal store.SealFunc) (store.VersionMeta, error) {
	if err := s.begin(ctx); err != nil {
		return store.VersionMeta{}, err
	}
	keep := opts.MaxVersions
	if keep <= 0 {
		keep = store.DefaultMaxVersions
	}
	mu := s.stripe(path)
	mu.Lock()
	defer mu.Unlock()
	metaKey := s.k.meta(path)
	for attempt := 0; attempt < maxAttempts; attempt++ {
		rs, _, err := s.read(ctx, clientv3.OpGet(metaKey))
		if err != nil {
			return store.VersionMeta{}, s.fail(err, "storing secret %q", path)
		}
		m, metaRev, ok, err := metaOf(rs[0])
		if err != nil {
			return store.VersionMeta{}, s.fail(err, "storing secret %q", path)
		}
		if !ok {
			m = meta{oldest: 1}
		}
		if m.latest == math.MaxUint32 {
			return store.VersionMeta{}, fmt.Errorf("storing secret %q: it has reached the last version number %d; destroy it to start again", path, m.latest)
		}
		next := m.latest + 1
		envelope, err := seal(int(next))
		if err != nil {
			return store.VersionMeta{}, err // nothing is written yet
		}
		if len(envelope) > MaxValueSize {
			return store.VersionMeta{}, fmt.Errorf("storing secret %q: %w", path, tooLarge("the sealed value", len(envelope)))
		}
		// Created never goes back, even if this server's clock is behind
		// the one that stored the previous version.
		created := max(time.Now().UnixNano(), m.created)
		m.hidden, m.latest, m.created, m.size = false, next, created, uint32(len(envelope))
		ops := []clientv3.Op{
			clientv3.OpPut(s.k.version(path, next), encodeVersion(created, envelope)),
		}
		if low := int64(next) - int64(keep) + 1; low > int64(m.oldest) {
			ops = append(ops, clientv3.OpDelete(s.k.version(path, m.oldest), clientv3.WithRange(s.k.version(path, uint32(low)))))
			m.oldest = uint32(low)
		}
		ops = append(ops, clientv3.OpPut(metaKey, m.encode()))
		resp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(metaKey), "=", metaRev)).
			Then(ops...).
			Commit()
		if err != nil {
			return store.VersionMeta{}, s.fail(err, "storing secret %q version %d", path, next)
		}
		if resp.Succeeded {
			return store.VersionMeta{Version: int(next), Created: unixNano(created), Size: len(envelope)}, nil
		}
		if err := backoff(ctx, attempt); err != nil {
			return store.VersionMeta{}, err
		}
	}
	return store.VersionMeta{}, fmt.Errorf("storing secret %q: %w", path, errContended)
}

// Get implements store.Store in one read of the meta and the version.
func (s *Store) Get(ctx context.Context, path string, version int) (store.Version, error) {
	if err := s.begin(ctx); err != nil {
		return store.Version{}, err
	}
	if version < 0 || version > math.MaxUint32 {
		return store.Version{}, fmt.Errorf("reading secret %q version %d: %w", path, version, store.ErrNotFound)
	}
	vop := clientv3.OpGet(s.k.version(path, uint32(version)))
	if version == 0 {
		vop = clientv3.OpGet(s.k.versionsOf(path), clientv3.WithLastKey()...)
	}
	rs, _, err := s.read(ctx, clientv3.OpGet(s.k.meta(path)), vop)
	if err != nil {
		return store.Version{}, s.fail(err, "reading secret %q", path)
	}
	m, _, ok, err := metaOf(rs[0])
	if err != nil {
		return store.Version{}, s.fail(err, "reading secret %q", path)
	}
	if !ok || m.hidden {
		return store.Version{}, fmt.Errorf("reading secret %q: %w", path, store.ErrNotFound)
	}
	kvs := rs[1].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return store.Version{}, fmt.Errorf("reading secret %q version %d: %w", path, version, store.ErrNotFound)
	}
	_, n, err := parseVersionKey(string(kvs[0].Key[len(s.k.versionsPrefix()):]))
	if err != nil {
		return store.Version{}, s.fail(err, "reading secret %q", path)
	}
	created, envelope, err := decodeVersion(kvs[0].Value)
	if err != nil {
		return store.Version{}, s.fail(err, "reading secret %q version %d", path, n)
	}
	return store.Version{Path: path, Version: int(n), Created: unixNano(created), Envelope: bytes.Clone(envelope)}, nil
}

// listPage is how many keys a scan reads per request.
const listPage = 1000

// scan calls fn for every key in [from, end), reading pages of page keys at
// one revision; the first page goes through read, so a scan sees a
// consistent state.
func (s *Store) scan(ctx context.Context, from, end string, page int64, fn func(kv *mvccpb.KeyValue) error) error {
	var rev int64
	for {
		var rng *pb.RangeResponse
		if rev == 0 {
			rs, r, err := s.read(ctx, clientv3.OpGet(from, clientv3.WithRange(end), clientv3.WithLimit(page)))
			if err != nil {
				return err
			}
			rng, rev = rs[0].GetResponseRange(), r
		} else {
			resp, err := s.readTxn(ctx, clientv3.OpGet(from, clientv3.WithRange(end), clientv3.WithLimit(page), clientv3.WithRev(rev)))
			if err != nil {
				return err
			}
			rng = resp.Responses[0].GetResponseRange()
		}
		for _, kv := range rng.Kvs {
			if err := fn(kv); err != nil {
				return err
			}
		}
		if !rng.More || len(rng.Kvs) == 0 {
			return nil
		}
		from = string(rng.Kvs[len(rng.Kvs)-1].Key) + "\x00"
	}
}

// List implements store.Store. It reads only the metas.
func (s *Store) List(ctx context.Context, prefix string) ([]store.Meta, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	from := s.k.meta(prefix)
	var list []store.Meta
	err := s.scan(ctx, from, clientv3.GetPrefixRangeEnd(from), listPage, func(kv *mvccpb.KeyValue) error {
		path := string(kv.Key[len(s.k.metaPrefix()):])
		m, err := decodeMeta(kv.Value)
		if err != nil {
			return fmt.Errorf("secret %q: %w", path, err)
		}
		if !m.hidden {
			list = append(list, store.Meta{Path: path, Version: int(m.latest), Created: unixNano(m.created), Size: int(m.size)})
		}
		return nil
	})
	if err != nil {
		return nil, s.fail(err, "listing secrets under %q", prefix)
	}
	return list, nil
}

// History implements store.Store in one read of the meta and the versions.
func (s *Store) History(ctx context.Context, path string) ([]store.VersionMeta, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	rs, _, err := s.read(ctx, clientv3.OpGet(s.k.meta(path)), clientv3.OpGet(s.k.versionsOf(path), clientv3.WithPrefix()))
	if err != nil {
		return nil, s.fail(err, "reading the history of secret %q", path)
	}
	m, _, ok, err := metaOf(rs[0])
	if err != nil {
		return nil, s.fail(err, "reading the history of secret %q", path)
	}
	if !ok || m.hidden {
		return nil, fmt.Errorf("reading the history of secret %q: %w", path, store.ErrNotFound)
	}
	kvs := rs[1].GetResponseRange().Kvs
	h := make([]store.VersionMeta, 0, len(kvs))
	for _, kv := range kvs {
		_, n, err := parseVersionKey(string(kv.Key[len(s.k.versionsPrefix()):]))
		if err != nil {
			return nil, s.fail(err, "reading the history of secret %q", path)
		}
		created, envelope, err := decodeVersion(kv.Value)
		if err != nil {
			return nil, s.fail(err, "reading the history of secret %q version %d", path, n)
		}
		h = append(h, store.VersionMeta{Version: int(n), Created: unixNano(created), Size: len(envelope)})
	}
	return h, nil
}

// Hide implements store.Store with a compare-and-swap of the meta.
func (s *Store) Hide(ctx context.Context, path string) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	mu := s.stripe(path)
	mu.Lock()
	defer mu.Unlock()
	metaKey := s.k.meta(path)
	for attempt := 0; attempt < maxAttempts; attempt++ {
		rs, _, err := s.read(ctx, clientv3.OpGet(metaKey))
		if err != nil {
			return s.fail(err, "hiding secret %q", path)
		}
		m, metaRev, ok, err := metaOf(rs[0])
		if err != nil {
			return s.fail(err, "hiding secret %q", path)
		}
		if !ok || m.hidden {
			return fmt.Errorf("hiding secret %q: %w", path, store.ErrNotFound)
		}
		m.hidden = true
		resp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(metaKey), "=", metaRev)).
			Then(clientv3.OpPut(metaKey, m.encode())).
			Commit()
		if err != nil {
			return s.fail(err, "hiding secret %q", path)
		}
		if resp.Succeeded {
			return nil
		}
		if err := backoff(ctx, attempt); err != nil {
			return err
		}
	}
	return fmt.Errorf("hiding secret %q: %w", path, errContended)
}

// Destroy implements store.Store: one transaction deletes the meta and
// every version key if the meta exists.
func (s *Store) Destroy(ctx context.Context, path string) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	metaKey := s.k.meta(path)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(metaKey), ">", 0)).
		Then(clientv3.OpDelete(metaKey), clientv3.OpDelete(s.k.versionsOf(path), clientv3.WithPrefix())).
		Commit()
	if err != nil {
		return s.fail(err, "destroying secret %q", path)
	}
	if !resp.Succeeded {
		return fmt.Errorf("destroying secret %q: %w", path, store.ErrNotFound)
	}
	return nil
}

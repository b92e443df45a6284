package etcdstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/privyhq/privy/internal/store"
)

// rewrapLeaseTTL is how long, in seconds, the marker of a Rewrap that is
// staging outlives its process.
const rewrapLeaseTTL = 10

// batchOps and batchBytes bound one transaction of staging or applying,
// under etcd's default --max-txn-ops of 128 and request limit of 1.5 MiB. A
// single value may exceed batchBytes, up to MaxValueSize.
const (
	batchOps   = 40
	batchBytes = 512 << 10
)

var (
	// errLostLock means the rewrap marker changed under a staging Rewrap.
	errLostLock = errors.New("the rewrap lost its lock (its etcd lease expired); nothing was changed")
	// errFinished means another caller finished a committed rewrap.
	errFinished = errors.New("the rewrap was finished by another caller")
)

// cleanupTimeout bounds the steps that must run even when the caller's
// context has ended: undoing a failed Rewrap and revoking its lease.
const cleanupTimeout = 10 * time.Second

// Rewrap implements store.Store. It is atomic however many versions it
// rewrites, within etcd's limits on one transaction, in three steps:
//
//  1. Lock: it creates the rewrap marker, attached to a lease that it keeps
//     alive, and deletes whatever dead Rewraps staged. Another Rewrap fails
//     while the marker exists; if the process dies, the lease expires
//     (after 10s) and the marker goes with it.
//  2. Stage: it reads every version key at one revision, calls fn for each
//     and writes the results under the staging prefix, in transactions of
//     bounded size that hold only while the marker is its own. Nothing
//     readers see has changed yet; if fn fails (or anything else does), the
//     marker and the staged keys are deleted and Rewrap returns the error.
//  3. Commit: one transaction marks the marker committed and detaches it
//     from the lease. From then on the rewrap has happened: every read, Put
//     and Hide that sees a committed marker first finishes applying it,
//     moving each staged envelope into its version key, with the size in
//     the meta, unless that key changed since it was staged (pruned,
//     destroyed, written again), and then deletes the marker. Rewrap
//     finishes right after committing; a process that dies at any point
//     leaves either nothing changed (before the commit) or a committed
//     rewrap that the next call of any Store on the prefix finishes.
//
// Versions that a concurrent Put stores after the staging read are not
// rewritten, as with any rewrap that runs before them. If etcd compacts the
// revision a long staging read is at, Rewrap fails and changes nothing. If
// the connection fails during the commit itself, Rewrap asks etcd which
// way it went and returns an error saying the outcome is unknown only if
// etcd cannot tell it.
func (s *Store) Rewrap(ctx context.Context, fn store.RewrapFunc) (int, error) {
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	n, err := s.rewrap(ctx, fn)
	if err != nil {
		return 0, s.fail(err, "rewrapping secrets")
	}
	return n, nil
}

func (s *Store) rewrap(ctx context.Context, fn store.RewrapFunc) (int, error) {
	// A committed rewrap that another call left behind is finished first.
	if _, _, err := s.read(ctx); err != nil {
		return 0, err
	}
	lease, err := s.cli.Grant(ctx, rewrapLeaseTTL)
	if err != nil {
		return 0, fmt.Errorf("taking the rewrap lock: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		s.cli.Revoke(cctx, lease.ID) // the marker no longer needs it either way
	}()
	kctx, stopKeepAlive := context.WithCancel(ctx)
	defer stopKeepAlive()
	alive, err := s.cli.KeepAlive(kctx, lease.ID)
	if err != nil {
		return 0, fmt.Errorf("taking the rewrap lock: %w", err)
	}
	go func() {
		for range alive { // the channel closes when kctx ends
		}
	}()

	id := make([]byte, 8)
	rand.Read(id)
	mk := marker{ID: hex.EncodeToString(id)}
	markerRev, err := s.lock(ctx, mk, lease.ID)
	if err != nil {
		return 0, err
	}
	n, err := s.stage(ctx, fn, mk.ID, markerRev)
	if err != nil || n == 0 {
		s.abort(ctx, mk.ID, markerRev)
		return 0, err
	}
	mk.Committed, mk.Count = true, n
	commitRev, err := s.commit(ctx, mk, markerRev)
	if err != nil {
		return 0, err
	}
	// The rewrap has happened; if finishing fails here, the next call that
	// reads finishes it.
	_ = s.finish(ctx, mk, commitRev)
	return n, nil
}

// lock creates the marker of a staging rewrap and deletes what dead
// rewraps staged. It returns the marker's revision.
func (s *Store) lock(ctx context.Context, mk marker, lease clientv3.LeaseID) (int64, error) {
	key := s.k.rewrap()
	for range 3 {
		resp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, mk.encode(), clientv3.WithLease(lease)), clientv3.OpDelete(s.k.stagingAll(), clientv3.WithPrefix())).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			return 0, fmt.Errorf("taking the rewrap lock: %w", err)
		}
		if resp.Succeeded {
			return resp.Header.Revision, nil
		}
		other, rev, committed, err := s.decodeRewrap(resp.Responses[0])
		if err != nil {
			return 0, err
		}
		if !committed {
			return 0, fmt.Errorf("another rewrap (%s) is in progress; try again when it is done", other.ID)
		}
		if err := s.finish(ctx, other, rev); err != nil {
			return 0, err
		}
	}
	return 0, errors.New("taking the rewrap lock: other rewraps keep committing; try again")
}

// decodeRewrap decodes the marker in a range response; committed is false
// if there is none or it is staging.
func (s *Store) decodeRewrap(r *pb.ResponseOp) (m marker, modRev int64, committed bool, err error) {
	kvs := r.GetResponseRange().Kvs
	if len(kvs) == 0 {
		return marker{}, 0, false, nil
	}
	m, err = decodeMarker(kvs[0].Value)
	return m, kvs[0].ModRevision, err == nil && m.Committed, err
}

// stage calls fn for every stored version and writes the results under the
// staging prefix of id while the marker is at markerRev. It returns how
// many versions it staged.
func (s *Store) stage(ctx context.Context, fn store.RewrapFunc, id string, markerRev int64) (int, error) {
	var (
		n     int
		ops   []clientv3.Op
		size  int
		guard = clientv3.Compare(clientv3.ModRevision(s.k.rewrap()), "=", markerRev)
	)
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		resp, err := s.cli.Txn(ctx).If(guard).Then(ops...).Commit()
		if err != nil {
			return fmt.Errorf("staging rewrapped envelopes: %w", err)
		}
		if !resp.Succeeded {
			return errLostLock
		}
		ops, size = ops[:0], 0
		return nil
	}
	vp := s.k.versionsPrefix()
	err := s.scan(ctx, vp, clientv3.GetPrefixRangeEnd(vp), batchOps, func(kv *mvccpb.KeyValue) error {
		rest := string(kv.Key[len(vp):])
		path, v, err := parseVersionKey(rest)
		if err != nil {
			return err
		}
		created, envelope, err := decodeVersion(kv.Value)
		if err != nil {
			return fmt.Errorf("secret %q version %d: %w", path, v, err)
		}
		out, err := fn(path, int(v), bytes.Clone(envelope))
		if err != nil {
			return fmt.Errorf("rewrapping secret %q version %d: %w", path, v, err)
		}
		if len(out) > MaxValueSize {
			return fmt.Errorf("rewrapping secret %q version %d: %w", path, v, tooLarge("the rewrapped value", len(out)))
		}
		value := encodeStaged(kv.ModRevision, encodeVersion(created, out))
		if len(ops) >= batchOps || size+len(value) > batchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		ops = append(ops, clientv3.OpPut(s.k.staging(id)+rest, value))
		size += len(value)
		n++
		return nil
	})
	if err == nil {
		err = flush()
	}
	return n, err
}

// commit marks the rewrap committed, which is the moment it happens.
func (s *Store) commit(ctx context.Context, mk marker, markerRev int64) (int64, error) {
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(s.k.rewrap()), "=", markerRev)).
		Then(clientv3.OpPut(s.k.rewrap(), mk.encode())).
		Commit()
	if err == nil && resp.Succeeded {
		return resp.Header.Revision, nil
	}
	if err == nil {
		err = errLostLock
	}
	// The reply to a commit that etcd applied may have been lost: undoing
	// tells, since it holds only while the marker is still uncommitted.
	rev, committed, aerr := s.abort(ctx, mk.ID, markerRev)
	switch {
	case committed:
		return rev, nil
	case aerr != nil:
		return 0, fmt.Errorf("committing the rewrap: %w; %w: whether it was committed (%v) the next Rewrap or read will tell", err, store.ErrOutcomeUnknown, aerr)
	}
	return 0, fmt.Errorf("committing the rewrap: %w", err)
}

// abort deletes the marker of an uncommitted rewrap and what it staged. It
// reports a marker of id found committed, with its revision.
func (s *Store) abort(ctx context.Context, id string, markerRev int64) (rev int64, committed bool, err error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	key := s.k.rewrap()
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", markerRev)).
		Then(clientv3.OpDelete(key), clientv3.OpDelete(s.k.staging(id), clientv3.WithPrefix())).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return 0, false, err
	}
	if resp.Succeeded {
		return 0, false, nil
	}
	// The lease expired and another rewrap may hold the lock now; it
	// deleted what this one staged when it took it.
	m, rev, committed, err := s.decodeRewrap(resp.Responses[0])
	if err != nil || m.ID != id {
		return 0, false, err
	}
	return rev, committed, nil
}

// finish applies the committed rewrap mk, whose marker is at mRev, and
// deletes its marker. Several callers, in several processes, may finish
// the same rewrap at once: each step holds only if nobody did it first.
func (s *Store) finish(ctx context.Context, mk marker, mRev int64) error {
	s.finishing.Lock()
	defer s.finishing.Unlock()
	key, prefix := s.k.rewrap(), s.k.staging(mk.ID)
	end := clientv3.GetPrefixRangeEnd(prefix)
	for {
		resp, err := s.readTxn(ctx, clientv3.OpGet(key, clientv3.WithKeysOnly()), clientv3.OpGet(prefix, clientv3.WithRange(end), clientv3.WithLimit(batchOps)))
		if err != nil {
			return fmt.Errorf("finishing a committed rewrap: %w", err)
		}
		if m := resp.Responses[0].GetResponseRange().Kvs; len(m) == 0 || m[0].ModRevision != mRev {
			return nil // finished by another caller
		}
		kvs := resp.Responses[1].GetResponseRange().Kvs
		if len(kvs) == 0 {
			break
		}
		for len(kvs) > 0 {
			i, size := 1, len(kvs[0].Value)
			for ; i < len(kvs) && size+len(kvs[i].Value) <= batchBytes; i++ {
				size += len(kvs[i].Value)
			}
			err := s.apply(ctx, mk.ID, mRev, kvs[:i])
			if errors.Is(err, errFinished) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("finishing a committed rewrap: %w", err)
			}
			kvs = kvs[i:]
		}
	}
	_, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", mRev)).
		Then(clientv3.OpDelete(key), clientv3.OpDelete(prefix, clientv3.WithPrefix())).
		Commit()
	if err != nil {
		return fmt.Errorf("finishing a committed rewrap: %w", err)
	}
	return nil
}

// staged is one staged envelope on its way to its version key.
type staged struct {
	path           string
	version        uint32
	versionKey     string
	orig           int64  // the ModRevision of versionKey when staged
	value          []byte // the new value of versionKey
	envelopeLength int
}

// apply moves the staged keys kvs (in key order) into their version keys,
// with the meta's size when a key is its secret's latest version, and then
// deletes them. A version key that changed since it was staged is left
// alone: whoever changed it wrote a newer value or removed it.
func (s *Store) apply(ctx context.Context, id string, mRev int64, kvs []*mvccpb.KeyValue) error {
	var pending []staged
	for _, kv := range kvs {
		rest := string(kv.Key[len(s.k.staging(id)):])
		path, v, err := parseVersionKey(rest)
		if err != nil {
			return err
		}
		orig, value, err := decodeStaged(kv.Value)
		if err != nil {
			return fmt.Errorf("secret %q version %d: %w", path, v, err)
		}
		pending = append(pending, staged{path, v, s.k.versionsPrefix() + rest, orig, value, len(value) - 8})
	}
	guard := clientv3.Compare(clientv3.ModRevision(s.k.rewrap()), "=", mRev)
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt == maxAttempts {
			return errContended
		}
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return err
			}
		}
		// Read the metas and the version keys' revisions as they are now.
		var reads []clientv3.Op
		metaAt := map[string]int{}
		for _, e := range pending {
			if _, ok := metaAt[e.path]; !ok {
				metaAt[e.path] = len(reads)
				reads = append(reads, clientv3.OpGet(s.k.meta(e.path)))
			}
		}
		first := len(reads)
		for _, e := range pending {
			reads = append(reads, clientv3.OpGet(e.versionKey, clientv3.WithKeysOnly()))
		}
		now, err := s.readTxn(ctx, reads...)
		if err != nil {
			return err
		}
		var (
			subs  []clientv3.Op
			tried []staged
		)
		for i, e := range pending {
			cur := now.Responses[first+i].GetResponseRange().Kvs
			if len(cur) == 0 || cur[0].ModRevision != e.orig {
				continue // applied by another caller, or changed since
			}
			sameVersion := clientv3.Compare(clientv3.ModRevision(e.versionKey), "=", e.orig)
			put := clientv3.OpPut(e.versionKey, string(e.value))
			m, metaRev, ok, err := metaOf(now.Responses[metaAt[e.path]])
			if err != nil {
				return fmt.Errorf("secret %q: %w", e.path, err)
			}
			if ok && m.latest == e.version && int(m.size) != e.envelopeLength {
				m.size = uint32(e.envelopeLength)
				subs = append(subs, clientv3.OpTxn(
					[]clientv3.Cmp{sameVersion, clientv3.Compare(clientv3.ModRevision(s.k.meta(e.path)), "=", metaRev)},
					[]clientv3.Op{put, clientv3.OpPut(s.k.meta(e.path), m.encode())}, nil))
			} else {
				subs = append(subs, clientv3.OpTxn([]clientv3.Cmp{sameVersion}, []clientv3.Op{put}, nil))
			}
			tried = append(tried, e)
		}
		if len(subs) == 0 {
			break
		}
		resp, err := s.cli.Txn(ctx).If(guard).Then(subs...).Commit()
		if err != nil {
			return err
		}
		if !resp.Succeeded {
			return errFinished
		}
		pending = pending[:0]
		for i, r := range resp.Responses {
			if !r.GetResponseTxn().Succeeded {
				pending = append(pending, tried[i]) // its meta changed: again
			}
		}
	}
	first, last := string(kvs[0].Key), string(kvs[len(kvs)-1].Key)
	resp, err := s.cli.Txn(ctx).If(guard).Then(clientv3.OpDelete(first, clientv3.WithRange(last+"\x00"))).Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return errFinished
	}
	return nil
}

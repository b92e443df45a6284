package etcdstore

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/privyhq/privy/internal/store"
)

// CommitRewrapOnly runs the lock, stage and commit steps of a Rewrap but not
// finish, as a process that dies right after committing would.
func (s *Store) CommitRewrapOnly(ctx context.Context, fn store.RewrapFunc) error {
	lease, err := s.cli.Grant(ctx, rewrapLeaseTTL)
	if err != nil {
		return err
	}
	mk := marker{ID: "dead-after-commit"}
	rev, err := s.lock(ctx, mk, lease.ID)
	if err != nil {
		return err
	}
	n, err := s.stage(ctx, fn, mk.ID, rev)
	if err != nil {
		return err
	}
	mk.Committed, mk.Count = true, n
	_, err = s.commit(ctx, mk, rev)
	return err
}

// StageRewrapAndDie runs the lock and stage steps of a Rewrap and then
// revokes its lease, as the expiry of a dead process's lease would.
func (s *Store) StageRewrapAndDie(ctx context.Context, fn store.RewrapFunc) error {
	lease, err := s.cli.Grant(ctx, rewrapLeaseTTL)
	if err != nil {
		return err
	}
	mk := marker{ID: "dead-while-staging"}
	rev, err := s.lock(ctx, mk, lease.ID)
	if err != nil {
		return err
	}
	if _, err := s.stage(ctx, fn, mk.ID, rev); err != nil {
		return err
	}
	_, err = s.cli.Revoke(ctx, lease.ID)
	return err
}

// RewrapKeys returns how many staging keys and rewrap markers the store
// holds.
func (s *Store) RewrapKeys(ctx context.Context) (int64, error) {
	var n int64
	for _, prefix := range []string{s.k.stagingAll(), s.k.rewrap()} {
		resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return 0, err
		}
		n += resp.Count
	}
	return n, nil
}

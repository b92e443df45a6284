// Package etcdstore is the distributed store.Store: every secret, version
// and record lives in an etcd cluster, so that several privy servers share
// one state and none keeps anything of its own that another would need.
//
// It promises what package store's contract says, for any number of Store
// values on any number of machines sharing one etcd and one Prefix:
//
//   - Every change is one etcd transaction that compares the revisions of
//     what it read (compare-and-swap) and is retried, a bounded number of
//     times, when another writer got there first. Two servers never lose
//     each other's updates, and Put, Hide and Destroy of a secret, with the
//     pruning Put does, are each one atomic step.
//   - A record's Revision is the etcd ModRevision of its key: it changes on
//     every write, is never 0, and is never reused, even after a delete.
//   - Reads are linearizable, and a read that meets a transient error (an
//     election, a member going away) is retried for about five seconds
//     within its context. A write that fails with such an error may or may
//     not have been applied; it is not retried, since retrying a Put could
//     store a second version.
//   - Rewrap is atomic over every stored version, however many: it stages
//     the new envelopes beside the old ones, then commits them with one
//     write; until that write nothing visible has changed, and after it
//     every reader sees only the new envelopes (see Rewrap).
//
// Sizes: an envelope, a rewrapped envelope or a record value longer than
// MaxValueSize (1 MiB) is refused with an error wrapping ErrTooLarge that
// states the limit. Values are not split: etcd refuses any request larger
// than its --max-request-bytes (1.5 MiB by default), and a value must fit
// in one transaction with its metadata for Put to stay atomic. An etcd
// started with a lower --max-request-bytes refuses smaller requests; that
// error also wraps ErrTooLarge.
//
// Each call is bounded by its context only: with no deadline, a call waits
// for as long as etcd is unreachable.
package etcdstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/privyhq/privy/internal/store"
)

// DefaultPrefix is the key namespace used when Config.Prefix is empty.
const DefaultPrefix = "/privy/"

// DefaultDialTimeout is how long Open waits for a connection when
// Config.DialTimeout is zero.
const DefaultDialTimeout = 5 * time.Second

// MaxValueSize is the longest envelope or record value the store accepts,
// in bytes. It leaves room under etcd's default request limit of 1.5 MiB
// for the keys and metadata written in the same transaction.
const MaxValueSize = 1 << 20

// ErrTooLarge means a value is longer than the store or etcd accepts.
var ErrTooLarge = errors.New("value too large for the etcd store")

// Config says which etcd to use and how.
type Config struct {
	// Endpoints are the client URLs of the etcd members
	// ("https://etcd-1:2379"); at least one is required.
	Endpoints []string
	// Prefix is the key namespace of this store, "/privy/" when empty. A
	// missing final "/" is added. Stores with different prefixes share an
	// etcd without seeing each other.
	Prefix string
	// TLS, if set, is used for every connection to etcd (server
	// verification and, with Certificates, client authentication).
	TLS *tls.Config
	// DialTimeout bounds how long Open waits for etcd to answer;
	// DefaultDialTimeout when zero.
	DialTimeout time.Duration
}

// Store is a store.Store kept in etcd. It is safe for concurrent use.
type Store struct {
	cli    *clientv3.Client
	k      keys
	closed atomic.Bool

	// stripes serialise the read-modify-write calls of one process on the
	// same path, so that only other processes make them retry.
	stripes [64]sync.Mutex
	// finishing lets one goroutine at a time finish a committed Rewrap.
	finishing sync.Mutex
}

var _ store.Store = (*Store)(nil)

// Open connects to etcd and checks (or, on an empty prefix, writes) the
// store format. It fails if etcd does not answer within cfg.DialTimeout or
// before ctx ends.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("opening the etcd store: no etcd endpoints given")
	}
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	dial := cfg.DialTimeout
	if dial <= 0 {
		dial = DefaultDialTimeout
	}
	where := fmt.Sprintf("etcd store %s at %s", prefix, strings.Join(cfg.Endpoints, ","))
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		TLS:         cfg.TLS,
		DialTimeout: dial,
		// Keepalives notice a member that stopped answering (a paused or
		// partitioned machine) and move to another; etcd refuses pings
		// more often than every 5s.
		DialKeepAliveTime:    6 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		// The client's own log would go to stderr; errors reach the caller.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("opening %s: connecting: %w", where, err)
	}
	s := &Store{cli: cli, k: keys{prefix: prefix}}
	// The client connects in the background: the first request is what
	// tells whether etcd answers, within the dial timeout.
	fctx, cancel := context.WithTimeout(ctx, dial)
	defer cancel()
	if err := s.checkFormat(fctx); err != nil {
		cli.Close()
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("etcd did not answer within %v: %w", dial, err)
		}
		return nil, fmt.Errorf("opening %s: %w", where, err)
	}
	return s, nil
}

// checkFormat writes the format key of a new prefix or checks an existing
// one.
func (s *Store) checkFormat(ctx context.Context) error {
	key := s.k.format()
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, formatVersion)).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return fmt.Errorf("checking the store format: %w", err)
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) != 1 || string(kvs[0].Value) != formatVersion {
		return fmt.Errorf("the prefix holds a store of another format; this privy reads format %s", formatVersion)
	}
	return nil
}

// Close releases the connection to etcd. Calls after Close return
// store.ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return store.ErrClosed
	}
	if err := s.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("closing the etcd store: %w", err)
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

// fail wraps an error of a call: a close that raced the call becomes
// store.ErrClosed, and etcd's refusal of a large request wraps ErrTooLarge.
func (s *Store) fail(err error, format string, args ...any) error {
	switch {
	case errors.Is(err, store.ErrClosed) || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict):
	case s.closed.Load():
		err = store.ErrClosed
	case errors.Is(err, rpctypes.ErrRequestTooLarge):
		err = fmt.Errorf("%w: etcd refused the request as larger than its --max-request-bytes (%w)", ErrTooLarge, err)
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}

// tooLarge reports a value over MaxValueSize; what names the value.
func tooLarge(what string, n int) error {
	return fmt.Errorf("%s is %d bytes; the etcd store's limit is %d bytes (MaxValueSize, under etcd's default 1.5 MiB request limit): %w", what, n, MaxValueSize, ErrTooLarge)
}

// stripe returns the mutex of path's stripe.
func (s *Store) stripe(path string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(path))
	return &s.stripes[h.Sum32()%uint32(len(s.stripes))]
}

// maxAttempts bounds how often a change is tried again after losing a
// race, and a read after a transient error.
const maxAttempts = 50

// errContended is returned when a change lost every race it ran.
var errContended = errors.New("gave up after losing the race to concurrent writers too often")

// backoff sleeps a little longer after each failed attempt, with jitter so
// that racing writers spread out, or returns ctx's error.
func backoff(ctx context.Context, attempt int) error {
	d := time.Duration(min(attempt+1, 20)) * 5 * time.Millisecond
	t := time.NewTimer(d/2 + rand.N(d))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// transient reports whether err may go away by itself, so that a read can
// be tried again (writes are not: see the package doc).
func transient(err error) bool {
	for _, e := range []error{
		rpctypes.ErrNoLeader, rpctypes.ErrLeaderChanged, rpctypes.ErrNotCapable,
		rpctypes.ErrStopped, rpctypes.ErrTimeout, rpctypes.ErrTimeoutDueToLeaderFail,
		rpctypes.ErrTimeoutDueToConnectionLost, rpctypes.ErrTimeoutWaitAppliedIndex,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable {
		return true
	}
	return false
}

// readTxn runs a read-only transaction of ops, retrying transient errors.
func (s *Store) readTxn(ctx context.Context, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	for attempt := 0; ; attempt++ {
		resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
		if err == nil || !transient(err) || attempt == maxAttempts-1 {
			return resp, err
		}
		if err := backoff(ctx, attempt); err != nil {
			return nil, err
		}
	}
}

// read runs a read-only transaction of ops that sees a consistent state of
// the secrets: if a committed Rewrap is still being applied, it finishes it
// first. It returns the responses to ops and the revision read at.
func (s *Store) read(ctx context.Context, ops ...clientv3.Op) ([]*pb.ResponseOp, int64, error) {
	all := append([]clientv3.Op{clientv3.OpGet(s.k.rewrap())}, ops...)
	for range 3 {
		resp, err := s.readTxn(ctx, all...)
		if err != nil {
			return nil, 0, err
		}
		m, rev, committed, err := s.decodeRewrap(resp.Responses[0])
		if err != nil {
			return nil, 0, err
		}
		if !committed {
			return resp.Responses[1:], resp.Header.Revision, nil
		}
		if err := s.finish(ctx, m, rev); err != nil {
			return nil, 0, err
		}
	}
	return nil, 0, errors.New("a committed rewrap is still being applied by another server; try again")
}

package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Log is an audit log kept in one append-only file. It is safe for
// concurrent use.
type Log struct {
	path string
	opts options
	f    file

	mu      sync.Mutex
	pending *batch // entries waiting for the writer goroutine
	closed  bool
	failed  error  // set once a write or fsync fails
	seq     uint64 // last line in the file
	head    [sha256.Size]byte

	wake   chan struct{} // holds a token whenever pending may be non-nil
	exited chan struct{} // closed when the writer goroutine returns

	// Owned by the writer goroutine.
	wseq  uint64
	wprev [sha256.Size]byte
	werr  error
	buf   []byte
}

// request is one queued entry: its body is encoded by the caller, while its
// seq, time (when zero) and prev are filled in by the writer goroutine.
type request struct {
	time time.Time
	body []byte
}

// batch is the group of requests that share one write(2) and one fsync.
// Every writer in it waits on done and then reads err.
type batch struct {
	reqs []request
	done chan struct{}
	err  error
}

// maxKeptBuffer bounds the write buffer kept between batches, so one huge
// burst does not pin its memory for the life of the log.
const maxKeptBuffer = 4 << 20

// Open opens the audit log at path for appending, creating the file (0600)
// and its directory (0700) if needed. It takes an exclusive lock on the
// file (ErrLocked if another Log holds it), finds the last line's seq and
// hash by reading backwards from the end, and continues the chain from
// there. If the file ends in a partial line, as a crash during a write
// leaves it, Open cuts that tail off and appends an "audit.recover" entry
// saying how many bytes were dropped.
func Open(path string, opts ...Option) (*Log, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	l, dropped, err := open(path, f, o)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening audit log %s: %w", path, err)
	}
	if dropped > 0 {
		e := Entry{
			Actor:   "privy",
			Op:      "audit.recover",
			Outcome: OutcomeOK,
			Reason:  fmt.Sprintf("dropped a partial line of %d bytes at the end of the log, left by an interrupted write", dropped),
			Extra:   map[string]string{"dropped_bytes": strconv.FormatInt(dropped, 10)},
		}
		if err := l.Write(context.Background(), e); err != nil {
			l.Close()
			return nil, fmt.Errorf("opening audit log %s: recording recovery: %w", path, err)
		}
	}
	return l, nil
}

// open locks f, recovers its tail and starts the writer goroutine. It
// returns how many bytes of a partial last line it dropped.
func open(path string, f *os.File, o options) (*Log, int64, error) {
	if err := lock(f); err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	size := st.Size()
	if size == 0 && o.sync == SyncBatch {
		// The file may be new: make its directory entry durable too.
		if err := syncDir(filepath.Dir(path)); err != nil {
			return nil, 0, err
		}
	}
	end, err := completeEnd(f, size)
	if err != nil {
		return nil, 0, err
	}
	if end < size {
		if err := f.Truncate(end); err != nil {
			return nil, 0, fmt.Errorf("dropping partial last line: %w", err)
		}
	}
	seq, head, err := lastEntry(f, end)
	if err != nil {
		return nil, 0, err
	}
	var out file = f
	if o.wrap != nil {
		out = o.wrap(f)
	}
	l := &Log{
		path:   path,
		opts:   o,
		f:      out,
		seq:    seq,
		head:   head,
		wseq:   seq,
		wprev:  head,
		wake:   make(chan struct{}, 1),
		exited: make(chan struct{}),
	}
	go l.run()
	return l, size - end, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Write appends e to the log and returns once its line is written, and
// fsynced in SyncBatch mode. It sets e.Seq and e.Prev, and e.Time if it is
// zero; a given Time is written in UTC. It returns ctx.Err() if ctx is done
// before the entry is queued; once queued, the entry is written whatever
// happens to ctx. If the write fails, Write returns an error wrapping
// ErrFailed, as does every later Write. After Close it returns ErrClosed.
func (l *Log) Write(ctx context.Context, e Entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkTime(e.Time); err != nil {
		return fmt.Errorf("writing audit log: %w", err)
	}
	r := request{time: e.Time, body: appendBody(make([]byte, 0, 256), &e)}

	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	if l.failed != nil {
		err := l.failed
		l.mu.Unlock()
		return err
	}
	b := l.pending
	if b == nil {
		b = &batch{done: make(chan struct{})}
		l.pending = b
	}
	b.reqs = append(b.reqs, r)
	l.mu.Unlock()

	select {
	case l.wake <- struct{}{}:
	default: // a token is already there
	}
	<-b.done
	return b.err
}

// Err returns the error every Write would fail with now (ErrClosed, or
// the failure that stopped the log), or nil while the log accepts lines.
// Callers about to make a change that must be audited check it first.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	return l.failed
}

// Head returns the seq and hex hash of the last line in the file: the Prev
// the next line will carry. An empty log has seq 0 and GenesisHash.
func (l *Log) Head() (seq uint64, hash string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq, hex.EncodeToString(l.head[:])
}

// Close writes the entries already queued, fsyncs and closes the file. It
// reports the failure that stopped the log, if any. Closing twice is a no-op.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	<-l.exited

	err := l.werr
	if err == nil {
		if serr := l.f.Sync(); serr != nil {
			err = fmt.Errorf("closing audit log: %w", serr)
		}
	}
	if cerr := l.f.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("closing audit log: %w", cerr))
	}
	return err
}

// run is the writer goroutine: it takes whole batches off pending and
// commits them one after another, so file order is chain order.
func (l *Log) run() {
	defer close(l.exited)
	for range l.wake {
		for {
			l.mu.Lock()
			b, closed := l.pending, l.closed
			l.pending = nil
			l.mu.Unlock()
			if b == nil {
				if closed {
					return
				}
				break
			}
			l.commit(b)
		}
	}
}

// commit encodes b's entries onto the chain, writes them with one write(2),
// fsyncs if asked to, and releases b's writers.
func (l *Log) commit(b *batch) {
	defer close(b.done)
	if l.werr != nil {
		b.err = l.werr
		return
	}
	var now time.Time // one clock reading per batch keeps time ordered like seq
	buf := l.buf[:0]
	seq, prev := l.wseq, l.wprev
	for i := range b.reqs {
		r := &b.reqs[i]
		t := r.time
		if t.IsZero() {
			if now.IsZero() {
				now = l.opts.clock()
			}
			t = now
		}
		seq++
		start := len(buf)
		buf = appendHead(buf, seq, t)
		buf = append(buf, r.body...)
		buf = appendTail(buf, &prev)
		prev = sha256.Sum256(buf[start:])
		buf = append(buf, '\n')
	}
	if cap(buf) <= maxKeptBuffer {
		l.buf = buf
	} else {
		l.buf = nil
	}

	_, err := l.f.Write(buf)
	if err == nil && l.opts.sync == SyncBatch {
		err = l.f.Sync()
	}
	if err != nil {
		// The file may now hold part of this batch. Nothing more is written,
		// so the next Open drops the partial line and records that it did.
		l.werr = fmt.Errorf("writing audit log: %w: %w", ErrFailed, err)
		b.err = l.werr
		l.mu.Lock()
		l.failed = l.werr
		l.mu.Unlock()
		return
	}
	l.wseq, l.wprev = seq, prev
	l.mu.Lock()
	l.seq, l.head = seq, prev
	l.mu.Unlock()
}

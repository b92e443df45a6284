// Package audit is privy's tamper-evident audit log: every API request,
// allowed or denied, becomes one JSON line, and each line carries the SHA-256
// of the line before it.
//
// What it promises:
//
//   - A Write returns nil only after its line is in the file (and, in the
//     default SyncBatch mode, fsynced). If a line cannot be written, that
//     Write and every later one fails, so a server that refuses requests it
//     cannot audit never serves an unaudited request.
//   - Lines are numbered 1, 2, 3, … without gaps, and the order of the chain is
//     the order of the file. Concurrent writers share one write(2) and one
//     fsync per batch (group commit).
//   - Verify finds the first edited, removed, inserted or reordered line. A
//     hash chain alone cannot see lines cut from either end, nor a rewrite
//     of everything after some point; compare Summary.Head (and FirstSeq)
//     with a head recorded elsewhere (Log.Head) to catch those.
//   - An entry never holds a secret value or a token: the log writes only the
//     fields of Entry, and callers put identifiers (token accessors, paths,
//     container ids) in them, never values.
//
// The file format is one JSON object per line with the fields of Entry in a
// fixed order, encoded exactly as encoding/json would encode an Entry whose
// Time is in UTC.
package audit

import (
	"context"
	"errors"
	"time"
)

// Entry is one audit record. Seq, Prev and (when zero) Time are set by the
// log; callers fill in the rest.
type Entry struct {
	Seq       uint64            `json:"seq"`                  // 1-based, consecutive; set by the log
	Time      time.Time         `json:"time"`                 // UTC; set by the log when zero
	RequestID string            `json:"request_id,omitempty"` // ties lines of one request together
	Actor     string            `json:"actor"`                // "token:<accessor>", "peer:uid=0,pid=42", "container:<id>"
	Op        string            `json:"op"`                   // "secret.get", "token.create", …
	Path      string            `json:"path,omitempty"`       // secret or record path
	Version   int               `json:"version,omitempty"`    // secret version, if one is involved
	Outcome   string            `json:"outcome"`              // one of the Outcome constants
	Reason    string            `json:"reason,omitempty"`     // why a request was denied or failed
	Extra     map[string]string `json:"extra,omitempty"`      // image, build id, …; never values
	Prev      string            `json:"prev"`                 // hex SHA-256 of the previous line; set by the log
}

// Outcomes of a request.
const (
	OutcomeOK       = "ok"
	OutcomeDenied   = "denied"
	OutcomeNotFound = "not_found"
	OutcomeInvalid  = "invalid"
	OutcomeError    = "error"
)

// GenesisHash is the Prev of the first line of a log: 64 zeros.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// Writer is what the server needs from an audit log: Write returns nil only
// once the entry is durably recorded, and an error otherwise, in which case
// the request it describes must fail.
type Writer interface {
	Write(ctx context.Context, e Entry) error
}

var _ Writer = (*Log)(nil)

// Errors returned by Log and Verify. Callers test them with errors.Is.
var (
	// ErrClosed means the log was closed.
	ErrClosed = errors.New("audit log is closed")
	// ErrFailed means an earlier write or fsync failed; the log accepts no
	// more entries until it is reopened.
	ErrFailed = errors.New("audit log failed")
	// ErrLocked means another Log, in this process or another, has the file
	// open.
	ErrLocked = errors.New("audit log is in use by another writer")
	// ErrTruncated means the file ends in a partial line, as a crash during a
	// write leaves it. Open drops such a tail and records that it did.
	ErrTruncated = errors.New("audit log ends in a partial line")
)

// SyncMode says when the log calls fsync.
type SyncMode int

const (
	// SyncBatch fsyncs every batch before any Write in it returns. This is
	// the default.
	SyncBatch SyncMode = iota
	// SyncNone only calls write(2); a machine crash can lose acknowledged
	// lines. For benchmarks and development.
	SyncNone
)

// Option changes how Open sets up a Log.
type Option func(*options)

type options struct {
	sync  SyncMode
	clock func() time.Time
	wrap  func(file) file // tests inject faults here
}

func defaultOptions() options {
	return options{sync: SyncBatch, clock: time.Now}
}

// WithSync sets when the log fsyncs; the default is SyncBatch.
func WithSync(mode SyncMode) Option {
	return func(o *options) { o.sync = mode }
}

// WithClock sets the clock used for entries whose Time is zero; the default
// is time.Now. It must return times in the years 0 to 9999.
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.clock = now
		}
	}
}

// withFile wraps the log's file, so tests can make writes or syncs fail.
func withFile(wrap func(file) file) Option {
	return func(o *options) { o.wrap = wrap }
}

// file is the part of *os.File the writer goroutine uses.
type file interface {
	Write(p []byte) (int, error)
	Sync() error
	Close() error
}

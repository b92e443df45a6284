package server

// A client with several server addresses sends a write again, to the next
// address, when the connection broke before the reply came: the first
// server may or may not have done it. Such writes carry a request id, and
// the first request with an id claims it in the store; a repeat, on this
// server or on any other sharing the store, gets the reply the first one
// got instead of doing the work again (docs/api.md, "Retries and
// idempotency").

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/store"
)

const (
	// requestIDHeader carries the caller's id for a write.
	requestIDHeader = api.RequestIDHeader
	// recRequest is the record kind of claimed request ids, keyed by the
	// caller's token accessor and the id.
	recRequest = "request"
	// RequestTTL is how long the reply of a write is kept for repeats.
	RequestTTL = 10 * time.Minute
	// requestLease is how long a claim holds an id while its server works
	// on the request. A server that stopped mid-request never finishes its
	// claim; after the lease a repeat does the work itself.
	requestLease = 30 * time.Second
	// requestWait is how long a repeat waits for the first request to
	// finish before it answers that it is still in progress.
	requestWait = 3 * time.Second
	// requestPruneEvery is how often, at most, each operation sweeps
	// expired request records.
	requestPruneEvery = time.Minute
)

// dedupOps are the operations deduplicated by request id, with whether
// their reply holds a secret (a new token, a per-run files ticket): such a
// reply is kept sealed with the master key, never in clear.
var dedupOps = map[string]bool{
	"secret.put":      false,
	"secret.delete":   false, // and secret.destroy, the same route
	"token.create":    true,
	"token.revoke":    false,
	"profile.put":     false,
	"profile.delete":  false,
	"profile.oneshot": true,
}

// requestRecord is what the store keeps of a claimed request id.
type requestRecord struct {
	Done    bool      `json:"done"`
	Method  string    `json:"method"`
	URL     string    `json:"url"`     // path and query, to refuse an id reused for another request
	Expires time.Time `json:"expires"` // end of the lease, or of the reply's keeping

	// Of a finished request: its own id (X-Request-Id) and audit fields,
	// for the audit lines of repeats, and its reply.
	RequestID string            `json:"request_id,omitempty"`
	Op        string            `json:"op,omitempty"`
	Path      string            `json:"path,omitempty"`
	Version   int               `json:"version,omitempty"`
	Extra     map[string]string `json:"extra,omitempty"`
	Reply     json.RawMessage   `json:"reply,omitempty"`    // a reply without a secret
	Sealed    []byte            `json:"sealed,omitempty"`   // a reply with one, sealed
	Withheld  bool              `json:"withheld,omitempty"` // a reply with one, not kept (the server was sealed)
}

// once deduplicates fn by the request's Privy-Request-Id; a request
// without one runs fn as it is.
func (s *Server) once(secretReply bool, fn handlerFunc) handlerFunc {
	var lastPrune atomic.Int64
	return func(rq *request) (any, error) {
		id := rq.r.Header.Get(requestIDHeader)
		if id == "" {
			return fn(rq)
		}
		if !validRequestID(id) {
			return nil, badRequest("malformed "+requestIDHeader+" header",
				"send 16 to 64 letters, digits, '-' or '_' (privy's client sends 32 random hex digits)")
		}
		// Ids are the caller's own, so the record is keyed by who sent
		// it. A caller without a valid token fails in fn as it would have
		// without an id (and tokenless callers may not write at all).
		if !strings.HasPrefix(rq.r.Header.Get("Authorization"), "Bearer ") {
			return fn(rq)
		}
		if err := s.authenticate(rq); err != nil || rq.tok == nil {
			return fn(rq)
		}
		key := rq.tok.Accessor + "." + id
		rec, rev, err := s.claimRequest(rq, key)
		if err != nil {
			return nil, err
		}
		if rec != nil {
			return s.replay(rq, key, rec)
		}
		if now := s.now(); now.Sub(time.Unix(0, lastPrune.Load())) >= requestPruneEvery {
			lastPrune.Store(now.UnixNano())
			s.pruneRequests(rq.ctx)
		}
		rq.finish = func(status int, reply []byte) { s.finishRequest(rq, key, rev, status, reply, secretReply) }
		return fn(rq)
	}
}

// validRequestID accepts ids that are long enough to be unguessable by
// accident and cannot put arbitrary text into a store key.
func validRequestID(id string) bool {
	if len(id) < 16 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// claimRequest claims key for rq with a create-only write. If another
// request holds it, it returns that request's record once it is done
// (waiting up to requestWait for it), or an error.
func (s *Server) claimRequest(rq *request, key string) (*requestRecord, int64, error) {
	url := rq.r.URL.RequestURI()
	claim, err := json.Marshal(requestRecord{Method: rq.r.Method, URL: url, Expires: s.now().Add(requestLease)})
	if err != nil {
		return nil, 0, err
	}
	deadline := time.Now().Add(requestWait)
	for {
		rev, err := s.cfg.Store.PutRecord(rq.ctx, recRequest, key, claim, 0)
		if err == nil {
			return nil, rev, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return nil, 0, fmt.Errorf("claiming request id: %w", err)
		}
		r, err := s.cfg.Store.GetRecord(rq.ctx, recRequest, key)
		if errors.Is(err, store.ErrNotFound) {
			continue // its claim was just given up; claim it again
		}
		if err != nil {
			return nil, 0, fmt.Errorf("reading request record: %w", err)
		}
		var rec requestRecord
		if err := json.Unmarshal(r.Value, &rec); err != nil {
			return nil, 0, fmt.Errorf("request record %s: %w", key, err)
		}
		if !s.now().Before(rec.Expires) {
			// Kept long enough, or claimed by a server that never
			// finished: the id is free again. Of two requests deleting it,
			// one wins and the other sees a conflict.
			err := s.cfg.Store.DeleteRecord(rq.ctx, recRequest, key, r.Revision)
			if err != nil && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
				return nil, 0, fmt.Errorf("deleting expired request record: %w", err)
			}
			continue
		}
		if rec.Method != rq.r.Method || rec.URL != url {
			return nil, 0, badRequest(fmt.Sprintf("request id %s was already used for %s %s", rq.r.Header.Get(requestIDHeader), rec.Method, rec.URL),
				"send each request with an id of its own")
		}
		if rec.Done {
			return &rec, 0, nil
		}
		if time.Now().After(deadline) {
			return nil, 0, &apiError{http.StatusConflict, api.Error{
				Code:    api.CodeConflict,
				Message: "a request with the same id is still in progress; retry",
				Hint:    "send the request again, with the same id, in a few seconds",
			}}
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-rq.ctx.Done():
			t.Stop()
			return nil, 0, rq.ctx.Err()
		case <-t.C:
		}
	}
}

// finishRequest records the reply of the request that claimed key, just
// before it is sent. A write that failed did nothing, so its claim is
// given up and a repeat may try again.
func (s *Server) finishRequest(rq *request, key string, rev int64, status int, reply []byte, secretReply bool) {
	// The client may be gone; the record is what its repeat will find.
	ctx := context.WithoutCancel(rq.ctx)
	if status != http.StatusOK {
		if err := s.cfg.Store.DeleteRecord(ctx, recRequest, key, rev); err != nil {
			s.log.Warn("giving up a request id failed", "request_id", rq.entry.RequestID, "err", err)
		}
		return
	}
	rec := requestRecord{
		Done: true, Method: rq.r.Method, URL: rq.r.URL.RequestURI(), Expires: s.now().Add(RequestTTL),
		RequestID: rq.entry.RequestID, Op: rq.entry.Op, Path: rq.entry.Path, Version: rq.entry.Version,
	}
	for k, v := range rq.entry.Extra {
		if k != "build" { // the repeat's build is its own
			rec.Extra = mergeExtra(rec.Extra, k, v)
		}
	}
	if secretReply {
		s.keyMu.RLock()
		if s.key == nil {
			rec.Withheld = true
		} else if sealed, err := s.key.Seal(requestSealPath(key), 1, reply); err != nil {
			s.log.Warn("sealing a reply for repeats failed", "request_id", rq.entry.RequestID, "err", err)
			rec.Withheld = true
		} else {
			rec.Sealed = sealed
		}
		s.keyMu.RUnlock()
	} else {
		rec.Reply = reply
	}
	b, err := json.Marshal(rec)
	if err == nil {
		_, err = s.cfg.Store.PutRecord(ctx, recRequest, key, b, rev)
	}
	if err != nil {
		// The reply still goes out; a repeat after the lease does the
		// work again.
		s.log.Warn("recording a reply for repeats failed", "request_id", rq.entry.RequestID, "err", err)
	}
}

// replay answers a repeat with the first request's reply and audits it as
// a replay of that request.
func (s *Server) replay(rq *request, key string, rec *requestRecord) (any, error) {
	rq.entry.Op, rq.entry.Path, rq.entry.Version = rec.Op, rec.Path, rec.Version
	for k, v := range rec.Extra {
		rq.entry.Extra = mergeExtra(rq.entry.Extra, k, v)
	}
	rq.entry.Extra = mergeExtra(rq.entry.Extra, "replay", "true")
	rq.entry.Extra = mergeExtra(rq.entry.Extra, "replay_of", rec.RequestID)
	if rec.Reply != nil {
		return rec.Reply, nil
	}
	if !rec.Withheld {
		s.keyMu.RLock()
		defer s.keyMu.RUnlock()
		k, err := s.currentKey()
		if err != nil {
			return nil, err
		}
		// A reply sealed with a key rotated away since cannot be opened,
		// and is answered as one that was not kept.
		if plain, err := k.Open(requestSealPath(key), 1, rec.Sealed); err == nil {
			return json.RawMessage(plain), nil
		}
	}
	return nil, &apiError{http.StatusConflict, api.Error{
		Code:    api.CodeConflict,
		Message: fmt.Sprintf("this request was already done (request %s); its reply held a secret that was not kept", rec.RequestID),
		Hint:    "send a new request, with a new id, if you need another",
	}}
}

// requestSealPath binds a sealed reply to its record.
func requestSealPath(key string) string { return ":request/" + key }

// pruneRequests deletes request records past their expiry.
func (s *Server) pruneRequests(ctx context.Context) {
	recs, err := s.cfg.Store.ListRecords(ctx, recRequest)
	if err != nil {
		return
	}
	now := s.now()
	for _, r := range recs {
		var rec requestRecord
		if json.Unmarshal(r.Value, &rec) != nil || !now.Before(rec.Expires) {
			s.cfg.Store.DeleteRecord(ctx, recRequest, r.Key, r.Revision)
		}
	}
}

package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/audit"
	"github.com/privyhq/privy/internal/policy"
	"github.com/privyhq/privy/internal/seal"
	"github.com/privyhq/privy/internal/store"
	"github.com/privyhq/privy/internal/token"
)

// Pseudo-paths that system operations are authorized against. They start
// with ':' so they can never be secret paths; only `admin` on a glob such as
// `**` reaches them.
const (
	sysTokens = ":sys/tokens"
	sysAudit  = ":sys/audit"
	sysKeys   = ":sys/keys"
)

// request is one API call on its way through authentication, authorization,
// the operation and the audit log.
type request struct {
	w     http.ResponseWriter
	r     *http.Request
	ctx   context.Context
	entry audit.Entry
	tok   *token.Record // nil until authenticate succeeds
	ctr   *Container    // set when a tokenless caller is an identified container
	// streamed is set by handlers that wrote their own response.
	streamed bool
	// finish, if set, is given the reply just before it is sent (once
	// records it for repeats of the request).
	finish func(status int, reply []byte)
}

type handlerFunc func(rq *request) (any, error)

// handle wraps an operation: it runs fn, writes the audit line, and only
// then sends the response, so that a request whose audit line cannot be
// written fails. Writes that may be repeated are deduplicated by request
// id (see once).
func (s *Server) handle(op string, fn handlerFunc) http.HandlerFunc {
	if secretReply, ok := dedupOps[op]; ok {
		fn = s.once(secretReply, fn)
	}
	return func(w http.ResponseWriter, r *http.Request) {
		rq := &request{w: w, r: r, ctx: r.Context()}
		rq.entry = audit.Entry{
			RequestID: newRequestID(),
			Actor:     actorOf(r),
			Op:        op,
		}
		w.Header().Set("X-Request-Id", rq.entry.RequestID)
		if id := r.Header.Get(api.BuildHeader); id != "" && validBuildID(id) {
			rq.entry.Extra = map[string]string{"build": id}
		}
		body, err := fn(rq)
		if rq.streamed {
			return // the handler audited and answered itself
		}
		status, apiErr := s.classify(rq, err)
		if err := s.audit(rq, apiErr); err != nil {
			status, apiErr = http.StatusInternalServerError, &api.Error{
				Code:    api.CodeInternal,
				Message: "the audit log cannot be written, so the request was refused",
				Hint:    "check the server's log and the audit log's disk",
			}
			s.log.Error("audit write failed", "request_id", rq.entry.RequestID, "err", err)
		}
		if apiErr != nil {
			rq.reply(status, api.ErrorBody{Error: *apiErr})
			return
		}
		rq.reply(http.StatusOK, body)
	}
}

// reply sends the response, after handing it to finish.
func (rq *request) reply(status int, v any) {
	status, b := encodeJSON(status, v)
	if rq.finish != nil {
		rq.finish(status, b)
	}
	writeBytes(rq.w, status, b)
}

// audit writes the request's audit line with the outcome of apiErr.
func (s *Server) audit(rq *request, apiErr *api.Error) error {
	e := rq.entry
	if apiErr == nil {
		e.Outcome = "ok"
	} else {
		e.Reason = apiErr.Message
		switch apiErr.Code {
		case api.CodeUnauthenticated, api.CodePermissionDenied:
			e.Outcome = "denied"
		case api.CodeNotFound:
			e.Outcome = "not_found"
		case api.CodeInvalid, api.CodeTooLarge, api.CodeConflict:
			e.Outcome = "invalid"
		default:
			e.Outcome = "error"
		}
	}
	// The request's own context may be cancelled by a client that went away;
	// the line must still be written.
	return s.cfg.Audit.Write(context.WithoutCancel(rq.ctx), e)
}

func newRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// auditHealth is the optional ability of an audit writer to say that it
// has stopped accepting lines (*audit.Log has it).
type auditHealth interface{ Err() error }

// auditReady refuses a change up front when the audit log is known to be
// broken, so that a mutation is not made and then left unaudited. A write
// that fails in the same batch as the change itself can still leave the
// change in place; README's limits say so.
func (s *Server) auditReady() error {
	h, ok := s.cfg.Audit.(auditHealth)
	if !ok {
		return nil
	}
	if err := h.Err(); err != nil {
		s.log.Error("audit log unavailable", "err", err)
		return &apiError{http.StatusInternalServerError, api.Error{
			Code:    api.CodeInternal,
			Message: "the audit log cannot be written, so the request was refused",
			Hint:    "check the server's log and the audit log's disk",
		}}
	}
	return nil
}

// authenticate checks the bearer token and records its accessor as the
// actor. A request is authenticated once: a token with limited uses spends
// one per request.
func (s *Server) authenticate(rq *request) error {
	if rq.tok != nil {
		return nil
	}
	h := rq.r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		if ok, err := s.identify(rq); ok || err != nil {
			return err
		}
		return errUnauthenticated("no token given",
			"set PRIVY_TOKEN, or run `privy login` with the token `privy init` printed")
	}
	now := s.now()
	if rec, ok := s.tokens.get(tok, now); ok {
		rq.tok = &rec
		rq.entry.Actor = "token:" + rec.Accessor
		return nil
	}
	gen := s.tokens.generation()
	rec, err := token.Check(rq.ctx, s.cfg.Store, tok, now)
	if err == nil {
		s.tokens.put(tok, rec, now, gen)
	}
	if err != nil {
		if errors.Is(err, token.ErrMalformed) || errors.Is(err, token.ErrUnknown) ||
			errors.Is(err, token.ErrExpired) || errors.Is(err, token.ErrUsedUp) {
			if !errors.Is(err, token.ErrMalformed) {
				rq.entry.Actor = "token:" + token.Accessor(tok)
			}
			return errUnauthenticated(err.Error(), "ask an admin for a new token (`privy token create`)")
		}
		return err
	}
	rq.tok = &rec
	rq.entry.Actor = "token:" + rec.Accessor
	return nil
}

// authorize authenticates the caller and checks capability c on path.
func (s *Server) authorize(rq *request, c policy.Capability, path string) error {
	if rq.tok == nil && rq.ctr == nil {
		if err := s.authenticate(rq); err != nil {
			return err
		}
	}
	if rq.ctr != nil {
		// A container's only grant is its profile, checked where it is
		// rendered.
		return &apiError{http.StatusForbidden, api.Error{
			Code:    api.CodePermissionDenied,
			Message: fmt.Sprintf("container %s may only read its profile %q", short(rq.ctr.ID), rq.ctr.Profile),
			Hint:    "containers without a token call POST /v1/profiles/" + rq.ctr.Profile + "/render (privy exec does)",
		}}
	}
	if d := rq.tok.Policy.Missing(c, path); d != nil {
		return d
	}
	return nil
}

// secretPath extracts and validates the {path} of the URL.
func (rq *request) secretPath() (string, error) {
	p := rq.r.PathValue("path")
	rq.entry.Path = p
	if err := store.ValidatePath(p); err != nil {
		return "", err
	}
	return p, nil
}

// apiError is an error that already knows how it reads to a client.
type apiError struct {
	status int
	body   api.Error
}

func (e *apiError) Error() string { return e.body.Message }

func badRequest(msg, hint string) error {
	return &apiError{http.StatusBadRequest, api.Error{Code: api.CodeInvalid, Message: msg, Hint: hint}}
}

func errUnauthenticated(msg, hint string) error {
	return &apiError{http.StatusUnauthorized, api.Error{Code: api.CodeUnauthenticated, Message: msg, Hint: hint}}
}

var errSealed = &apiError{http.StatusServiceUnavailable, api.Error{
	Code:    api.CodeSealed,
	Message: "the store is sealed: the server has no master key",
	Hint:    "run `privy unseal`, or restart the server with --key-file, --passphrase-file or PRIVY_MASTER_KEY",
}}

// classify turns an operation's error into an HTTP status and API error.
// Internal errors are logged with the request id and not shown in detail.
func (s *Server) classify(rq *request, err error) (int, *api.Error) {
	if err == nil {
		return http.StatusOK, nil
	}
	var ae *apiError
	var pe *store.PathError
	var de *policy.DeniedError
	switch {
	case errors.As(err, &ae):
		b := ae.body
		return ae.status, &b
	case errors.As(err, &pe):
		return http.StatusBadRequest, &api.Error{Code: api.CodeInvalid, Message: pe.Error()}
	case errors.As(err, &de):
		return http.StatusForbidden, &api.Error{
			Code: api.CodePermissionDenied, Message: de.Error(),
			Capability: de.Capability.String(), Path: de.Path,
			Hint: fmt.Sprintf("ask an admin for a token with %q on %q", de.Capability.String(), de.Path),
		}
	case errors.Is(err, store.ErrNotFound):
		msg := "not found"
		if rq.entry.Path != "" {
			msg = fmt.Sprintf("no secret at %q", rq.entry.Path)
			if rq.entry.Version != 0 {
				msg = fmt.Sprintf("no version %d of secret %q", rq.entry.Version, rq.entry.Path)
			}
		}
		return http.StatusNotFound, &api.Error{Code: api.CodeNotFound, Message: msg}
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict, &api.Error{Code: api.CodeConflict, Message: "a concurrent change won; retry"}
	case errors.Is(err, seal.ErrWrongKey), errors.Is(err, seal.ErrCorrupt):
		s.log.Error("decrypting failed", "request_id", rq.entry.RequestID, "path", rq.entry.Path, "err", err)
		return http.StatusInternalServerError, &api.Error{
			Code:    api.CodeInternal,
			Message: fmt.Sprintf("the stored secret could not be decrypted: %v", err),
			Hint:    "the store may have been tampered with or restored from another key; see the server log",
		}
	case errors.Is(err, context.Canceled):
		return 499, &api.Error{Code: api.CodeInternal, Message: "request cancelled"}
	}
	s.log.Error("request failed", "request_id", rq.entry.RequestID, "op", rq.entry.Op, "err", err)
	return http.StatusInternalServerError, &api.Error{
		Code:    api.CodeInternal,
		Message: "internal error (request " + rq.entry.RequestID + ")",
		Hint:    "see the server's log for this request id",
	}
}

// decodeJSON reads one JSON object of at most limit bytes into v, rejecting
// unknown fields and trailing data. Its errors never quote the body, which
// may hold a secret.
func decodeJSON(r io.Reader, limit int64, v any) error {
	body, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return badRequest("reading request body: "+err.Error(), "")
	}
	if int64(len(body)) > limit {
		return &apiError{http.StatusRequestEntityTooLarge, api.Error{
			Code:    api.CodeTooLarge,
			Message: fmt.Sprintf("request body larger than %d bytes", limit),
			Hint:    "raise the server's --max-value-size (at most 64 MiB) for large assets",
		}}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("malformed JSON request body: "+jsonProblem(err), "see docs/api.md for the request format")
	}
	// Not dec.More, which reports no more data before a stray '}' or ']'.
	if rest := bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return badRequest("malformed JSON request body: data after the object", "send exactly one JSON object")
	}
	return nil
}

// jsonProblem describes a decoding error without echoing input bytes.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q has the wrong type (want %s)", te.Field, te.Type)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of input"
	case errors.As(err, new(base64.CorruptInputError)):
		return "a bytes field is not valid base64"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// Name the field only when it looks like a field name, so that a
		// value pasted in the wrong place is never echoed or audited.
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		if len(name) <= 32 && strings.Trim(name, "abcdefghijklmnopqrstuvwxyz_") == "" {
			return fmt.Sprintf("unknown field %q", name)
		}
		return "unknown field"
	}
	return "cannot decode"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	status, b := encodeJSON(status, v)
	writeBytes(w, status, b)
}

// encodeJSON encodes a reply, or an internal error if it cannot.
func encodeJSON(status int, v any) (int, []byte) {
	b, err := json.Marshal(v)
	if err != nil {
		return http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"encoding response"}}`)
	}
	return status, b
}

// writeBytes sends a JSON reply already encoded.
func writeBytes(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// validBuildID accepts the build ids privy build makes (and any short
// token of letters, digits, '.', '_' and '-'), so that a caller cannot put
// arbitrary text into the audit log through the header.
func validBuildID(id string) bool {
	if len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

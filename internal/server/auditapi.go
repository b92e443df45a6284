package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/audit"
	"github.com/privyhq/privy/internal/policy"
)

func (s *Server) auditFile() (string, error) {
	if s.cfg.AuditFile == "" {
		return "", badRequest("this server's audit log is not a file it can read back", "read the audit log where the server writes it")
	}
	return s.cfg.AuditFile, nil
}

// auditTail streams the last n lines (default 20) as JSON lines, and with
// follow=true keeps streaming new lines until the client goes away.
func (s *Server) auditTail(rq *request) (any, error) {
	if err := s.authorize(rq, policy.Admin, sysAudit); err != nil {
		return nil, err
	}
	path, err := s.auditFile()
	if err != nil {
		return nil, err
	}
	n := 20
	if v := rq.r.URL.Query().Get("n"); v != "" {
		if n, err = strconv.Atoi(v); err != nil || n < 0 {
			return nil, badRequest(fmt.Sprintf("n=%q is not a count of lines", v), "")
		}
	}
	follow := rq.r.URL.Query().Get("follow") == "true"
	// This request's own line is written before the tail is read, so the
	// reader sees it.
	if err := s.audit(rq, nil); err != nil {
		return nil, err
	}
	rq.streamed = true
	f, err := os.Open(path)
	if err != nil {
		s.log.Error("opening audit log", "err", err)
		writeJSON(rq.w, http.StatusInternalServerError, api.ErrorBody{Error: api.Error{Code: api.CodeInternal, Message: "opening the audit log failed"}})
		return nil, nil
	}
	defer f.Close()
	// Take the end first, so that a line written while the tail is read is
	// streamed by Follow rather than lost.
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		writeJSON(rq.w, http.StatusInternalServerError, api.ErrorBody{Error: api.Error{Code: api.CodeInternal, Message: "reading the audit log: " + err.Error()}})
		return nil, nil
	}
	lines, err := audit.Tail(io.NewSectionReader(f, 0, end), n)
	if err != nil {
		writeJSON(rq.w, http.StatusInternalServerError, api.ErrorBody{Error: api.Error{Code: api.CodeInternal, Message: "reading the audit log: " + err.Error()}})
		return nil, nil
	}
	rq.w.Header().Set("Content-Type", "application/x-ndjson")
	rq.w.WriteHeader(http.StatusOK)
	for _, l := range lines {
		rq.w.Write(append(l, '\n'))
	}
	flush(rq.w)
	if !follow {
		return nil, nil
	}
	// Follow until the client goes away or the server shuts down.
	ctx, cancel := context.WithCancel(rq.ctx)
	defer cancel()
	defer context.AfterFunc(s.streams, cancel)()
	err = audit.Follow(ctx, path, end, func(line []byte) error {
		if _, err := rq.w.Write(append(line, '\n')); err != nil {
			return err
		}
		flush(rq.w)
		return nil
	})
	if err != nil && !errors.Is(err, ctx.Err()) {
		s.log.Warn("following the audit log", "err", err)
	}
	return nil, nil
}

func flush(w http.ResponseWriter) {
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *Server) auditVerify(rq *request) (any, error) {
	if err := s.authorize(rq, policy.Admin, sysAudit); err != nil {
		return nil, err
	}
	path, err := s.auditFile()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening the audit log: %w", err)
	}
	defer f.Close()
	sum, err := audit.Verify(f)
	res := api.AuditVerifyResult{OK: err == nil, Lines: sum.Lines, LastSeq: sum.LastSeq, Head: sum.Head}
	var ce *audit.ChainError
	if errors.As(err, &ce) {
		res.Error, res.Line = ce.Error(), ce.Line
	} else if err != nil {
		return nil, fmt.Errorf("verifying the audit log: %w", err)
	}
	return res, nil
}

package server

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/policy"
	"github.com/privyhq/privy/internal/store"
	"github.com/privyhq/privy/internal/token"
)

func tokenInfo(rec token.Record) api.TokenInfo {
	info := api.TokenInfo{
		Accessor:  rec.Accessor,
		Name:      rec.Name,
		Rules:     make([]string, len(rec.Policy)),
		Created:   rec.Created,
		CreatedBy: rec.CreatedBy,
	}
	for i, r := range rec.Policy {
		info.Rules[i] = r.String()
	}
	if !rec.Expires.IsZero() {
		t := rec.Expires
		info.Expires = &t
	}
	if rec.UsesLeft > 0 {
		n := rec.UsesLeft
		info.UsesLeft = &n
	}
	return info
}

func (s *Server) createToken(rq *request) (any, error) {
	if err := s.authorize(rq, policy.Admin, sysTokens); err != nil {
		return nil, err
	}
	var req api.CreateTokenRequest
	if err := decodeJSON(rq.r.Body, 64<<10, &req); err != nil {
		return nil, err
	}
	p, err := policy.ParsePolicy(req.Rules)
	if err != nil {
		return nil, badRequest(err.Error(), "rules look like read,list:app/web/** (capabilities: read, list, write, delete, admin)")
	}
	// A token can only hand out what it holds itself.
	if !rq.tok.Policy.Covers(p) {
		return nil, &apiError{http.StatusForbidden, api.Error{
			Code:    api.CodePermissionDenied,
			Message: "the new token's rules go beyond the rules of the token creating it",
			Hint:    "create it with a token that holds those capabilities (for example the root token)",
		}}
	}
	var ttl time.Duration
	if req.TTL != "" {
		ttl, err = time.ParseDuration(req.TTL)
		if err != nil || ttl <= 0 {
			return nil, badRequest(fmt.Sprintf("ttl %q is not a positive duration", req.TTL), "use Go durations such as 30m, 1h or 720h")
		}
	}
	if req.Uses < 0 {
		return nil, badRequest("uses must be 0 (unlimited) or more", "")
	}
	if err := s.auditReady(); err != nil {
		return nil, err
	}
	tok, rec, err := token.Create(rq.ctx, s.cfg.Store, token.Spec{
		Name: req.Name, Policy: p, TTL: ttl, Uses: req.Uses, CreatedBy: rq.tok.Accessor,
	}, s.now())
	if err != nil {
		return nil, err
	}
	rq.entry.Extra = map[string]string{"new_accessor": rec.Accessor}
	return api.NewToken{Token: tok, TokenInfo: tokenInfo(rec)}, nil
}

func (s *Server) listTokens(rq *request) (any, error) {
	if err := s.authorize(rq, policy.Admin, sysTokens); err != nil {
		return nil, err
	}
	recs, err := token.List(rq.ctx, s.cfg.Store)
	if err != nil {
		return nil, err
	}
	out := api.TokenList{Tokens: make([]api.TokenInfo, 0, len(recs))}
	now := s.now()
	for _, r := range recs {
		if !r.Expires.IsZero() && !now.Before(r.Expires) {
			continue
		}
		out.Tokens = append(out.Tokens, tokenInfo(r))
	}
	return out, nil
}

func (s *Server) tokenSelf(rq *request) (any, error) {
	if err := s.authenticate(rq); err != nil {
		return nil, err
	}
	info := tokenInfo(*rq.tok)
	// The record is the one from before this request spent a use.
	if rq.tok.UsesLeft > 0 {
		n := rq.tok.UsesLeft - 1
		info.UsesLeft = &n
	}
	return info, nil
}

func (s *Server) revokeToken(rq *request) (any, error) {
	acc := rq.r.PathValue("accessor")
	rq.entry.Path = acc
	if err := s.authorize(rq, policy.Admin, sysTokens); err != nil {
		return nil, err
	}
	if err := s.auditReady(); err != nil {
		return nil, err
	}
	err := token.Revoke(rq.ctx, s.cfg.Store, acc)
	s.tokens.forget(acc)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, &apiError{http.StatusNotFound, api.Error{
				Code: api.CodeNotFound, Message: fmt.Sprintf("no token with accessor %q", acc),
				Hint: "list tokens with `privy token ls`",
			}}
		}
		return nil, err
	}
	return struct{}{}, nil
}

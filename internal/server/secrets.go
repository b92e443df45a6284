package server

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/policy"
	"github.com/privyhq/privy/internal/store"
)

// bodyLimit is the largest JSON body that can carry a value of n bytes.
func bodyLimit(n int) int64 { return int64(n)/3*4 + 4 + 4096 }

func (s *Server) putSecret(rq *request) (any, error) {
	path, err := rq.secretPath()
	if err != nil {
		return nil, err
	}
	if err := s.authorize(rq, policy.Write, path); err != nil {
		return nil, err
	}
	var req api.PutSecretRequest
	if err := decodeJSON(rq.r.Body, bodyLimit(s.cfg.MaxValueSize), &req); err != nil {
		return nil, err
	}
	if err := s.auditReady(); err != nil {
		return nil, err
	}
	if len(req.Value) > s.cfg.MaxValueSize {
		return nil, &apiError{http.StatusRequestEntityTooLarge, api.Error{
			Code:    api.CodeTooLarge,
			Message: fmt.Sprintf("value of %d bytes is over the limit of %d bytes", len(req.Value), s.cfg.MaxValueSize),
			Hint:    "start the server with a larger --max-value-size (at most 64 MiB) for assets",
		}}
	}
	s.keyMu.RLock()
	defer s.keyMu.RUnlock()
	key, err := s.currentKey()
	if err != nil {
		return nil, err
	}
	vm, err := s.cfg.Store.Put(rq.ctx, path, store.PutOptions{MaxVersions: s.cfg.MaxVersions},
		func(version int) ([]byte, error) { return key.Seal(path, version, req.Value) })
	clear(req.Value)
	if err != nil {
		return nil, fmt.Errorf("storing secret %q: %w", path, err)
	}
	rq.entry.Version = vm.Version
	s.notify(api.Change{Path: path, Version: vm.Version})
	return api.SecretMeta{Path: path, Version: vm.Version, Created: vm.Created}, nil
}

func (s *Server) getSecret(rq *request) (any, error) {
	path, err := rq.secretPath()
	if err != nil {
		return nil, err
	}
	version := 0
	if v := rq.r.URL.Query().Get("version"); v != "" {
		version, err = strconv.Atoi(v)
		if err != nil || version < 1 {
			return nil, badRequest(fmt.Sprintf("version %q is not a positive number", v), "see `privy secret history PATH` for the kept versions")
		}
		rq.entry.Version = version
	}
	if err := s.authorize(rq, policy.Read, path); err != nil {
		return nil, err
	}
	s.keyMu.RLock()
	defer s.keyMu.RUnlock()
	key, err := s.currentKey()
	if err != nil {
		return nil, err
	}
	v, err := s.cfg.Store.Get(rq.ctx, path, version)
	if err != nil {
		return nil, err
	}
	rq.entry.Version = v.Version
	value, err := key.Open(path, v.Version, v.Envelope)
	if err != nil {
		return nil, fmt.Errorf("opening secret %q version %d: %w", path, v.Version, err)
	}
	return api.Secret{SecretMeta: api.SecretMeta{Path: path, Version: v.Version, Created: v.Created}, Value: value}, nil
}

func (s *Server) deleteSecret(rq *request) (any, error) {
	path, err := rq.secretPath()
	if err != nil {
		return nil, err
	}
	destroy := rq.r.URL.Query().Get("destroy") == "true"
	if destroy {
		rq.entry.Op = "secret.destroy"
	}
	if err := s.authorize(rq, policy.Delete, path); err != nil {
		return nil, err
	}
	if s.Sealed() {
		return nil, errSealed
	}
	if err := s.auditReady(); err != nil {
		return nil, err
	}
	if destroy {
		err = s.cfg.Store.Destroy(rq.ctx, path)
	} else {
		err = s.cfg.Store.Hide(rq.ctx, path)
	}
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (s *Server) listSecrets(rq *request) (any, error) {
	prefix := rq.r.URL.Query().Get("prefix")
	rq.entry.Path = prefix
	if err := s.authenticate(rq); err != nil {
		return nil, err
	}
	if s.Sealed() {
		return nil, errSealed
	}
	metas, err := s.cfg.Store.List(rq.ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("listing secrets under %q: %w", prefix, err)
	}
	// A token sees only the paths it may list; an empty result for a token
	// that may list nothing at all under the prefix is a denial, so that the
	// user learns which capability is missing.
	out := api.SecretList{Secrets: []api.SecretMeta{}}
	for _, m := range metas {
		if rq.tok.Policy.Allows(policy.List, m.Path) {
			out.Secrets = append(out.Secrets, api.SecretMeta{Path: m.Path, Version: m.Version, Created: m.Created})
		}
	}
	if len(out.Secrets) == 0 && !mayListSomething(rq.tok.Policy, prefix) {
		return nil, &policy.DeniedError{Capability: policy.List, Path: prefix + "**"}
	}
	return out, nil
}

// mayListSomething reports whether any rule grants list (or admin) on a glob
// that could match a path under prefix.
func mayListSomething(p policy.Policy, prefix string) bool {
	for _, r := range p {
		if r.Caps&(policy.List|policy.Admin) == 0 {
			continue
		}
		if prefix == "" || globMayMatchPrefix(r.Glob, prefix) {
			return true
		}
	}
	return false
}

// globMayMatchPrefix is a conservative test: the glob's literal start and
// the prefix agree as far as both go.
func globMayMatchPrefix(glob, prefix string) bool {
	for i := 0; i < len(glob) && i < len(prefix); i++ {
		if glob[i] == '*' || glob[i] == '?' {
			return true
		}
		if glob[i] != prefix[i] {
			return false
		}
	}
	return true
}

func (s *Server) history(rq *request) (any, error) {
	path, err := rq.secretPath()
	if err != nil {
		return nil, err
	}
	if err := s.authenticate(rq); err != nil {
		return nil, err
	}
	if !rq.tok.Policy.Allows(policy.List, path) {
		if err := s.authorize(rq, policy.Read, path); err != nil {
			return nil, err
		}
	}
	if s.Sealed() {
		return nil, errSealed
	}
	vs, err := s.cfg.Store.History(rq.ctx, path)
	if err != nil {
		return nil, err
	}
	out := api.History{Path: path, Versions: make([]api.SecretMeta, 0, len(vs))}
	for _, v := range vs {
		out.Versions = append(out.Versions, api.SecretMeta{Path: path, Version: v.Version, Created: v.Created})
	}
	return out, nil
}

package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/policy"
	"github.com/privyhq/privy/internal/seal"
	"github.com/privyhq/privy/internal/store"
)

func (s *Server) status(rq *request) (any, error) {
	// keyMu also guards cfg.KeySource, which unseal sets.
	s.keyMu.RLock()
	defer s.keyMu.RUnlock()
	return api.Status{
		Version:      Version,
		Sealed:       s.key == nil,
		Store:        s.cfg.StoreName,
		KeySource:    s.cfg.KeySource,
		Started:      s.started,
		MaxValueSize: s.cfg.MaxValueSize,
		MaxVersions:  s.cfg.MaxVersions,
	}, nil
}

// unseal takes the master key (or the passphrase it derives from). The key
// itself is the credential, so no token is needed.
func (s *Server) unseal(rq *request) (any, error) {
	var req api.UnsealRequest
	if err := decodeJSON(rq.r.Body, 64<<10, &req); err != nil {
		return nil, err
	}
	var raw []byte
	var err error
	switch {
	case req.Key != "" && req.Passphrase != "":
		return nil, badRequest("give either a key or a passphrase, not both", "")
	case req.Key != "":
		if raw, err = seal.ParseKey(req.Key); err != nil {
			return nil, badRequest(err.Error(), "the key is base64 of 32 bytes, as in the key file")
		}
	case req.Passphrase != "":
		k, err := KeyFromPassphrase(rq.ctx, s.cfg.Store, []byte(req.Passphrase))
		if errors.Is(err, seal.ErrWrongKey) {
			return nil, errWrongKey
		}
		if errors.Is(err, errNoKDF) {
			return nil, badRequest(err.Error(), "unseal with the master key instead")
		}
		if err != nil {
			return nil, err
		}
		return s.install(rq, k, "passphrase")
	default:
		return nil, badRequest("no key or passphrase given", "")
	}
	k, err := seal.NewKey(raw)
	clear(raw)
	if err != nil {
		return nil, badRequest(err.Error(), "")
	}
	return s.install(rq, k, "unseal")
}

var errWrongKey = &apiError{http.StatusForbidden, api.Error{
	Code:    api.CodePermissionDenied,
	Message: "wrong master key: it does not open this store",
	Hint:    "use the key (or passphrase) this store was initialised with",
}}

var errNoKDF = errors.New("this store was not initialised with a passphrase")

// KeyFromPassphrase derives the master key from a passphrase with the
// store's parameters (trying those of an interrupted rotation too) and
// checks it against the store. A wrong passphrase gives seal.ErrWrongKey.
func KeyFromPassphrase(ctx context.Context, st store.Store, pass []byte) (*seal.Key, error) {
	found := false
	for _, name := range []string{kdfKey, kdfNextKey} {
		r, err := st.GetRecord(ctx, sysKind, name)
		if err != nil {
			continue
		}
		found = true
		var p seal.KDFParams
		if err := json.Unmarshal(r.Value, &p); err != nil {
			return nil, fmt.Errorf("decoding passphrase parameters: %w", err)
		}
		raw, err := seal.DeriveKey(pass, p)
		if err != nil {
			return nil, err
		}
		k, err := seal.NewKey(raw)
		clear(raw)
		if err != nil {
			return nil, err
		}
		if checkKey(ctx, st, k) == nil {
			return k, nil
		}
	}
	if !found {
		return nil, errNoKDF
	}
	return nil, fmt.Errorf("checking the passphrase: %w", seal.ErrWrongKey)
}

// install makes k the server's key after checking it against the store.
func (s *Server) install(rq *request, k *seal.Key, source string) (any, error) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if err := checkKey(rq.ctx, s.cfg.Store, k); err != nil {
		if errors.Is(err, seal.ErrWrongKey) {
			return nil, errWrongKey
		}
		return nil, err
	}
	s.key = k
	s.cfg.KeySource = source
	s.log.Info("store unsealed", "key_id", k.ID())
	return api.Status{Version: Version, Sealed: false, Store: s.cfg.StoreName, KeySource: source, Started: s.started}, nil
}

// rotate replaces the master key: every data key is rewrapped, values are
// not touched. With a key file, the new key is written beside it first and
// moved over it last, so an interrupted rotation is finished by the next
// start (see OpenKeyFile).
func (s *Server) rotate(rq *request) (any, error) {
	if err := s.authorize(rq, policy.Admin, sysKeys); err != nil {
		return nil, err
	}
	var req api.RotateRequest
	if err := decodeJSON(rq.r.Body, 64<<10, &req); err != nil {
		return nil, err
	}
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	old, err := s.currentKey()
	if err != nil {
		return nil, err
	}
	var raw []byte
	var kdf *seal.KDFParams
	switch {
	case req.NewKey != "" && req.NewPassphrase != "":
		return nil, badRequest("give either a new key or a new passphrase, not both", "")
	case req.NewKey != "":
		if raw, err = seal.ParseKey(req.NewKey); err != nil {
			return nil, badRequest(err.Error(), "the key is base64 of 32 bytes")
		}
	case req.NewPassphrase != "":
		p, err := seal.NewKDFParams()
		if err != nil {
			return nil, err
		}
		if raw, err = seal.DeriveKey([]byte(req.NewPassphrase), p); err != nil {
			return nil, badRequest(err.Error(), "")
		}
		kdf = &p
	case s.cfg.KeyFile != "":
		if raw, err = seal.GenerateKey(); err != nil {
			return nil, err
		}
	default:
		return nil, badRequest(fmt.Sprintf("this server's key came from %s, so it cannot store a new one itself", s.cfg.KeySource),
			"give the new key (privy admin rotate-master-key --new-key-file F) or a new passphrase")
	}
	next, err := seal.NewKey(raw)
	if err != nil {
		clear(raw)
		return nil, badRequest(err.Error(), "")
	}
	writeFile := s.cfg.KeyFile != "" && kdf == nil
	if writeFile {
		os.Remove(s.cfg.KeyFile + newKeySuffix)
		if err := seal.WriteKeyFile(s.cfg.KeyFile+newKeySuffix, raw); err != nil {
			clear(raw)
			return nil, fmt.Errorf("writing the new key file: %w", err)
		}
	}
	clear(raw)
	// New passphrase parameters are kept beside the old ones until the
	// rewrap is done, so that either passphrase unseals whatever state a
	// crash leaves behind.
	var kdfJSON []byte
	if kdf != nil {
		kdfJSON, _ = json.Marshal(kdf)
		if _, err := s.cfg.Store.PutRecord(rq.ctx, sysKind, kdfNextKey, kdfJSON, store.AnyRevision); err != nil {
			return nil, fmt.Errorf("storing passphrase parameters: %w", err)
		}
	}
	n, err := rewrapAll(rq.ctx, s.cfg.Store, old, next)
	if err != nil {
		// If nothing was rewrapped, the new key must not be taken up by
		// the next start as an interrupted rotation; if the store already
		// moved to it, KEYFILE.new is what finishes the job.
		if writeFile && errors.Is(err, errNothingRewrapped) {
			os.Remove(s.cfg.KeyFile + newKeySuffix)
		}
		return nil, err
	}
	if kdf != nil {
		if _, err := s.cfg.Store.PutRecord(rq.ctx, sysKind, kdfKey, kdfJSON, store.AnyRevision); err != nil {
			return nil, fmt.Errorf("storing passphrase parameters: %w", err)
		}
		s.cfg.Store.DeleteRecord(rq.ctx, sysKind, kdfNextKey, store.AnyRevision)
	}
	res := api.RotateResult{Rewrapped: n, KeyID: next.ID()}
	if writeFile {
		if err := os.Rename(s.cfg.KeyFile+newKeySuffix, s.cfg.KeyFile); err != nil {
			return nil, fmt.Errorf("moving the new key file in place: %w", err)
		}
		res.KeyFile = s.cfg.KeyFile
	}
	s.key = next
	rq.entry.Extra = map[string]string{"key_id": next.ID()}
	s.log.Info("master key rotated", "key_id", next.ID(), "rewrapped", n)
	return res, nil
}

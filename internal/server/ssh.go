package server

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/policy"
)

// The ssh endpoints let privy's build-time ssh-agent use an OpenSSH private
// key held in the store without the key ever leaving the server: the agent
// asks for the public key, and for each signature; each is audited.

// sshSigner opens the private key stored at the request's path for a
// caller with read on it.
func (s *Server) sshSigner(rq *request) (ssh.Signer, string, int, error) {
	path, err := rq.secretPath()
	if err != nil {
		return nil, "", 0, err
	}
	if err := s.authorize(rq, policy.Read, path); err != nil {
		return nil, "", 0, err
	}
	s.keyMu.RLock()
	defer s.keyMu.RUnlock()
	key, err := s.currentKey()
	if err != nil {
		return nil, "", 0, err
	}
	v, err := s.cfg.Store.Get(rq.ctx, path, 0)
	if err != nil {
		return nil, "", 0, err
	}
	rq.entry.Version = v.Version
	value, err := key.Open(path, v.Version, v.Envelope)
	if err != nil {
		return nil, "", 0, fmt.Errorf("opening secret %q version %d: %w", path, v.Version, err)
	}
	defer clear(value)
	raw, err := ssh.ParseRawPrivateKey(value)
	if err != nil {
		var pm *ssh.PassphraseMissingError
		if errors.As(err, &pm) {
			return nil, "", 0, badRequest(fmt.Sprintf("secret %q is a passphrase-protected private key", path),
				"store the key without a passphrase (ssh-keygen -p -N '' -f KEY on a copy): privy keeps it encrypted")
		}
		// The parser's message never quotes the key, but keep it out anyway.
		return nil, "", 0, badRequest(fmt.Sprintf("secret %q is not an OpenSSH or PEM private key", path),
			"store the private key file itself, e.g. `privy secret put PATH --file ~/.ssh/id_ed25519`")
	}
	signer, err := ssh.NewSignerFromKey(raw)
	if err != nil {
		return nil, "", 0, badRequest(fmt.Sprintf("secret %q holds a key type ssh cannot use", path), "use an ed25519, ecdsa or rsa key")
	}
	return signer, path, v.Version, nil
}

func (s *Server) sshPublicKey(rq *request) (any, error) {
	signer, path, version, err := s.sshSigner(rq)
	if err != nil {
		return nil, err
	}
	pub := signer.PublicKey()
	return api.SSHPublicKey{
		Path:        path,
		Version:     version,
		PublicKey:   strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(pub)), "\n"),
		Fingerprint: ssh.FingerprintSHA256(pub),
	}, nil
}

// Agent protocol signature flags (draft-miller-ssh-agent, section 4.5.1).
const (
	sshFlagRSASHA256 = 2
	sshFlagRSASHA512 = 4
)

func (s *Server) sshSign(rq *request) (any, error) {
	var req api.SSHSignRequest
	if err := decodeJSON(rq.r.Body, 1<<20, &req); err != nil {
		return nil, err
	}
	if err := s.auditReady(); err != nil {
		return nil, err
	}
	signer, _, _, err := s.sshSigner(rq)
	if err != nil {
		return nil, err
	}
	algo := ""
	if signer.PublicKey().Type() == ssh.KeyAlgoRSA {
		switch {
		case req.Flags&sshFlagRSASHA512 != 0:
			algo = ssh.KeyAlgoRSASHA512
		case req.Flags&sshFlagRSASHA256 != 0:
			algo = ssh.KeyAlgoRSASHA256
		}
	}
	var sig *ssh.Signature
	if as, ok := signer.(ssh.AlgorithmSigner); ok && algo != "" {
		sig, err = as.SignWithAlgorithm(nil, req.Data, algo)
	} else {
		sig, err = signer.Sign(nil, req.Data)
	}
	if err != nil {
		return nil, fmt.Errorf("signing with %q: %w", rq.entry.Path, err)
	}
	return api.SSHSignature{Format: sig.Format, Blob: sig.Blob, Rest: sig.Rest}, nil
}

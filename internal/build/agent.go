package build

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/privyhq/privy/client"
)

// keyAgent is an ssh-agent for one ssh id of one build. It holds the
// public keys of the id's store keys only; each signature is made by the
// server, which audits it with the build's id, so the private keys never
// leave the server.
type keyAgent struct {
	// ctx is the build's: agent.Agent's methods take no context, and the
	// agent lives exactly as long as the build, so it is kept here.
	ctx    context.Context
	client *client.Client
	keys   []agentKey
}

type agentKey struct {
	path string
	pub  ssh.PublicKey
}

var errReadOnly = errors.New("privy's build agent holds only the keys privy.yaml names; it cannot be changed")

func newKeyAgent(ctx context.Context, c *client.Client, keys []SSHKey) (*keyAgent, error) {
	a := &keyAgent{ctx: ctx, client: c}
	for _, k := range keys {
		pk, err := c.SSHPublicKey(ctx, k.Path)
		if err != nil {
			return nil, fmt.Errorf("ssh key %s: %w", k.Path, err)
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(pk.PublicKey))
		if err != nil {
			return nil, fmt.Errorf("ssh key %s: the server's public key does not parse: %w", k.Path, err)
		}
		a.keys = append(a.keys, agentKey{path: k.Path, pub: pub})
	}
	return a, nil
}

func (a *keyAgent) List() ([]*agent.Key, error) {
	out := make([]*agent.Key, len(a.keys))
	for i, k := range a.keys {
		out[i] = &agent.Key{Format: k.pub.Type(), Blob: k.pub.Marshal(), Comment: "privy:" + k.path}
	}
	return out, nil
}

func (a *keyAgent) Sign(key ssh.PublicKey, data []byte) (*ssh.Signature, error) {
	return a.SignWithFlags(key, data, 0)
}

func (a *keyAgent) SignWithFlags(key ssh.PublicKey, data []byte, flags agent.SignatureFlags) (*ssh.Signature, error) {
	blob := key.Marshal()
	for _, k := range a.keys {
		if string(k.pub.Marshal()) != string(blob) {
			continue
		}
		sig, err := a.client.SSHSign(a.ctx, k.path, data, uint32(flags))
		if err != nil {
			return nil, fmt.Errorf("signing with %s: %w", k.path, err)
		}
		return &ssh.Signature{Format: sig.Format, Blob: sig.Blob, Rest: sig.Rest}, nil
	}
	return nil, errors.New("privy's build agent does not hold that key")
}

func (a *keyAgent) Signers() ([]ssh.Signer, error) {
	return nil, errors.New("privy's build agent does not hand out signers")
}

func (a *keyAgent) Extension(string, []byte) ([]byte, error) {
	return nil, agent.ErrExtensionUnsupported
}

func (a *keyAgent) Add(agent.AddedKey) error   { return errReadOnly }
func (a *keyAgent) Remove(ssh.PublicKey) error { return errReadOnly }
func (a *keyAgent) RemoveAll() error           { return errReadOnly }
func (a *keyAgent) Lock([]byte) error          { return errReadOnly }
func (a *keyAgent) Unlock([]byte) error        { return errReadOnly }

// agentServer serves a keyAgent on a unix socket.
type agentServer struct {
	path   string
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	conn   map[net.Conn]bool
	closed bool
}

// serveAgent listens on path (mode 0600; its directory must be private)
// and serves a until close.
func serveAgent(path string, a agent.Agent) (*agentServer, error) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("starting the build's ssh-agent: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("starting the build's ssh-agent: %w", err)
	}
	s := &agentServer{path: path, ln: ln, conn: map[net.Conn]bool{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				c.Close()
				return
			}
			s.conn[c] = true
			s.wg.Add(1)
			s.mu.Unlock()
			go func() {
				defer s.wg.Done()
				agent.ServeAgent(a, c)
				c.Close()
				s.mu.Lock()
				delete(s.conn, c)
				s.mu.Unlock()
			}()
		}
	}()
	return s, nil
}

// close stops the agent, ends its connections and removes its socket.
func (s *agentServer) close() {
	s.mu.Lock()
	s.closed = true
	s.ln.Close()
	for c := range s.conn {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	os.Remove(s.path)
}

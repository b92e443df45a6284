package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/engine"
)

// ContainerLabel is the label that names a container's profile.
const ContainerLabel = "privy.profile"

// Container is a caller on the unix socket identified as a container by
// its peer credentials.
type Container struct {
	ID      string
	Name    string
	Image   string
	Profile string // the ContainerLabel; "" if the container has none
}

// Identifier maps a unix socket caller's pid to its container. It returns
// ErrNotContainer for a process outside any container.
type Identifier interface {
	Identify(ctx context.Context, pid int) (Container, error)
}

// ErrNotContainer is what an Identifier returns for a host process.
var ErrNotContainer = errors.New("the caller is not in a container")

// identify authenticates a caller that sent no token: a container on the
// unix socket, by its peer credentials and its label.
func (s *Server) identify(rq *request) (bool, error) {
	peer, ok := PeerFrom(rq.ctx)
	if !ok || s.cfg.Containers == nil {
		return false, nil
	}
	c, err := s.cfg.Containers.Identify(rq.ctx, int(peer.PID))
	if errors.Is(err, ErrNotContainer) {
		return false, nil
	}
	if err != nil {
		s.log.Error("identifying a container", "pid", peer.PID, "err", err)
		return false, errUnauthenticated("no token given, and the calling container could not be identified",
			"give a token (PRIVY_TOKEN_FILE), or check that the server can reach the Docker Engine")
	}
	rq.entry.Actor = "container:" + short(c.ID)
	rq.entry.Extra = mergeExtra(rq.entry.Extra, "image", c.Image)
	if c.Name != "" {
		rq.entry.Extra["container"] = c.Name
	}
	if c.Profile == "" {
		return false, &apiError{http.StatusForbidden, api.Error{
			Code:    api.CodePermissionDenied,
			Message: fmt.Sprintf("container %s has no %s label, so it is served nothing without a token", short(c.ID), ContainerLabel),
			Hint:    "start it with --label " + ContainerLabel + "=PROFILE, or give it a token",
		}}
	}
	rq.entry.Extra["profile"] = c.Profile
	rq.ctr = &c
	return true, nil
}

// subscribers are called after every new version of a secret.
type subscribers struct {
	mu   sync.Mutex
	next int
	fns  map[int]func(api.Change)
}

// Subscribe calls fn after every new version of any secret, until cancel
// is called. fn runs on the writing request's goroutine and must not block.
func (s *Server) Subscribe(fn func(api.Change)) (cancel func()) {
	s.subs.mu.Lock()
	defer s.subs.mu.Unlock()
	if s.subs.fns == nil {
		s.subs.fns = map[int]func(api.Change){}
	}
	id := s.subs.next
	s.subs.next++
	s.subs.fns[id] = fn
	return func() {
		s.subs.mu.Lock()
		delete(s.subs.fns, id)
		s.subs.mu.Unlock()
	}
}

func (s *Server) notify(c api.Change) {
	s.subs.mu.Lock()
	fns := make([]func(api.Change), 0, len(s.subs.fns))
	for _, fn := range s.subs.fns {
		fns = append(fns, fn)
	}
	s.subs.mu.Unlock()
	for _, fn := range fns {
		fn(c)
	}
}

// EngineIdentifier identifies callers through /proc/PID/cgroup and the
// Docker Engine's record of the container (its privy.profile label).
func EngineIdentifier(e *engine.Client) Identifier { return engineIdentifier{e} }

type engineIdentifier struct{ e *engine.Client }

func (ei engineIdentifier) Identify(ctx context.Context, pid int) (Container, error) {
	id, err := engine.ContainerOfPID(pid)
	if errors.Is(err, engine.ErrNotInContainer) {
		return Container{}, ErrNotContainer
	}
	if err != nil {
		return Container{}, err
	}
	c, err := ei.e.Inspect(ctx, id)
	if err != nil {
		return Container{}, err
	}
	if !c.Running {
		return Container{}, fmt.Errorf("container %s is not running", short(c.ID))
	}
	return Container{ID: c.ID, Name: c.Name, Image: c.Image, Profile: c.Labels[ContainerLabel]}, nil
}

package volume

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/engine"
)

// fakeSource is an in-memory profile server: the driver's side of the
// contract the real server implements.
type fakeSource struct {
	mu       sync.Mutex
	profiles map[string]api.Profile
	secrets  map[string][][]byte // path -> versions (index+1)
	tickets  map[string][]api.OneshotFile
	subs     map[int]func(api.Change)
	nextSub  int
	renders  int
	asked    []string // the ticket of each Render, in order
	whos     []string
	delay    time.Duration // of each Render
	fail     error         // returned by every Render if set
}

func newFakeSource() *fakeSource {
	return &fakeSource{
		profiles: map[string]api.Profile{},
		secrets:  map[string][][]byte{},
		tickets:  map[string][]api.OneshotFile{},
		subs:     map[int]func(api.Change){},
	}
}

func (s *fakeSource) setProfile(p api.Profile) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.profiles[p.Name]
	p.Version = 1
	if ok {
		p.Version = old.Version + 1
	}
	s.profiles[p.Name] = p
}

// put stores a new version and tells the subscribers, as the server does.
func (s *fakeSource) put(path, value string) int {
	s.mu.Lock()
	s.secrets[path] = append(s.secrets[path], []byte(value))
	v := len(s.secrets[path])
	subs := make([]func(api.Change), 0, len(s.subs))
	for _, fn := range s.subs {
		subs = append(subs, fn)
	}
	s.mu.Unlock()
	for _, fn := range subs {
		fn(api.Change{Path: path, Version: v})
	}
	return v
}

func (s *fakeSource) oneshot(files ...api.OneshotFile) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := fmt.Sprintf("ticket-%d", len(s.tickets)+1)
	s.tickets[t] = files
	return t
}

func (s *fakeSource) renderCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.renders
}

func (s *fakeSource) Render(ctx context.Context, name string, req api.RenderRequest, who string) (*api.Rendered, error) {
	s.mu.Lock()
	delay := s.delay
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.renders++
	s.whos = append(s.whos, who)
	s.asked = append(s.asked, req.Oneshot)
	if s.fail != nil {
		return nil, s.fail
	}
	p, ok := s.profiles[name]
	if !ok {
		return nil, fmt.Errorf("no profile %q", name)
	}
	r := &api.Rendered{Profile: name, Version: p.Version, HostPrivate: p.HostPrivate, OnRotate: p.OnRotate}
	byName := map[string]int{}
	add := func(f api.RenderedFile) {
		if i, ok := byName[f.Name]; ok {
			r.Files[i] = f
			return
		}
		byName[f.Name] = len(r.Files)
		r.Files = append(r.Files, f)
	}
	owner := func(o api.Owner) (mode uint32, uid, gid int) {
		mode = o.Mode
		if mode == 0 {
			mode = 0o400
		}
		if o.UID != nil {
			uid = *o.UID
		}
		if o.GID != nil {
			gid = *o.GID
		}
		return
	}
	for _, f := range p.Files {
		vs := s.secrets[f.Secret]
		if len(vs) == 0 {
			return nil, fmt.Errorf("profile %q: secret %q not found", name, f.Secret)
		}
		mode, uid, gid := owner(f.Owner)
		add(api.RenderedFile{Name: f.Name, Secret: f.Secret, Version: len(vs), Mode: mode, UID: uid, GID: gid,
			Value: append([]byte(nil), vs[len(vs)-1]...)})
	}
	for _, pp := range p.Prefixes {
		var paths []string
		for path := range s.secrets {
			if strings.HasPrefix(path, pp.Prefix) {
				paths = append(paths, path)
			}
		}
		sort.Strings(paths)
		for _, path := range paths {
			vs := s.secrets[path]
			mode, uid, gid := owner(pp.Owner)
			name := strings.TrimPrefix(path, pp.Prefix)
			if pp.Dir != "" {
				name = pp.Dir + "/" + name
			}
			add(api.RenderedFile{Name: name, Secret: path, Version: len(vs), Mode: mode, UID: uid, GID: gid,
				Value: append([]byte(nil), vs[len(vs)-1]...)})
		}
	}
	for _, rp := range p.Repos {
		rr := api.RenderedRepo{ProfileRepo: rp}
		for _, c := range []struct {
			path string
			dst  *[]byte
		}{{rp.SSHKey, &rr.SSHKeyValue}, {rp.KnownHosts, &rr.KnownHostsValue}, {rp.Password, &rr.PasswordValue}, {rp.AgeIdentity, &rr.AgeIdentityValue}} {
			if vs := s.secrets[c.path]; c.path != "" && len(vs) > 0 {
				*c.dst = append([]byte(nil), vs[len(vs)-1]...)
			}
		}
		r.Repos = append(r.Repos, rr)
	}
	if req.Oneshot != "" {
		files, ok := s.tickets[req.Oneshot]
		if !ok {
			return nil, fmt.Errorf("one-shot ticket unknown, used or expired")
		}
		delete(s.tickets, req.Oneshot)
		for _, f := range files {
			mode := f.Mode
			if mode == 0 {
				mode = 0o400
			}
			add(api.RenderedFile{Name: f.Name, Mode: mode, Value: append([]byte(nil), f.Value...)})
		}
	}
	return r, nil
}

func (s *fakeSource) Subscribe(fn func(api.Change)) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.nextSub
	s.nextSub++
	s.subs[id] = fn
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.subs, id)
	}
}

func (s *fakeSource) Profile(ctx context.Context, name string) (*api.Profile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.profiles[name]
	if !ok {
		return nil, fmt.Errorf("no profile %q", name)
	}
	return &p, nil
}

// plainSource hides fakeSource's ProfileSource ability.
type plainSource struct{ *fakeSource }

func (plainSource) Profile() {}

// fakeEngine records the signals the driver sends.
type fakeEngine struct {
	mu         sync.Mutex
	containers []engine.Container
	kills      []string // "id signal"
}

func (e *fakeEngine) UsingVolume(ctx context.Context, volume string) ([]engine.Container, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []engine.Container
	for _, c := range e.containers {
		for _, m := range c.Mounts {
			if m.Name == volume {
				out = append(out, c)
				break
			}
		}
	}
	return out, nil
}

func (e *fakeEngine) Kill(ctx context.Context, id, signal string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.kills = append(e.kills, id+" "+signal)
	return nil
}

func (e *fakeEngine) killed() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.kills...)
}

package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/audit"
	"github.com/privyhq/privy/internal/deliver"
	"github.com/privyhq/privy/internal/policy"
	"github.com/privyhq/privy/internal/profile"
	"github.com/privyhq/privy/internal/seal"
	"github.com/privyhq/privy/internal/store"
)

// Profiles are records: the current definition under recProfile, every
// version under recProfileVersion (name@version), and per-run files of
// one mount under recOneshot, sealed, until the mount takes them.
const (
	recProfile        = "profile"
	recProfileVersion = "profile-version"
	recOneshot        = "oneshot"

	// sysProfiles is what changing a profile is authorized against:
	// a profile decides what containers read, so only admins write one.
	sysProfiles = ":sys/profiles"

	// OneshotTTL is how long per-run files wait for their mount.
	OneshotTTL = 10 * time.Minute
)

func (rq *request) profileName() (string, error) {
	name := rq.r.PathValue("name")
	rq.entry.Path = ":profiles/" + name
	if err := profile.CheckName(name); err != nil {
		return "", badRequest(err.Error(), "")
	}
	return name, nil
}

func (s *Server) putProfile(rq *request) (any, error) {
	name, err := rq.profileName()
	if err != nil {
		return nil, err
	}
	if err := s.authorize(rq, policy.Admin, sysProfiles); err != nil {
		return nil, err
	}
	var p api.Profile
	if err := decodeJSON(rq.r.Body, 1<<20, &p); err != nil {
		return nil, err
	}
	if p.Name == "" {
		p.Name = name
	}
	if p.Name != name {
		return nil, badRequest(fmt.Sprintf("the body names profile %q but the URL %q", p.Name, name), "make them agree")
	}
	if err := profile.Validate(p); err != nil {
		return nil, badRequest(err.Error(), "see docs/manifest.md for the profile format")
	}
	if err := s.auditReady(); err != nil {
		return nil, err
	}
	cur, rev, err := s.profile(rq.ctx, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		p.Version = s.lastProfileVersion(rq.ctx, name) + 1
	case err != nil:
		return nil, err
	default:
		p.Version = cur.Version + 1
	}
	p.Updated = s.now().UTC()
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	// Create-only: of two racing puts, the loser fails here before it
	// writes anything.
	if _, err := s.cfg.Store.PutRecord(rq.ctx, recProfileVersion, versionKey(name, p.Version), b, 0); err != nil {
		return nil, err
	}
	if _, err := s.cfg.Store.PutRecord(rq.ctx, recProfile, name, b, rev); err != nil {
		return nil, err
	}
	rq.entry.Version = p.Version
	return p, nil
}

func versionKey(name string, v int) string { return fmt.Sprintf("%s@%010d", name, v) }

// lastProfileVersion is the highest version a deleted profile had, so that
// a profile put again does not reuse version numbers.
func (s *Server) lastProfileVersion(ctx context.Context, name string) int {
	recs, err := s.cfg.Store.ListRecords(ctx, recProfileVersion)
	if err != nil {
		return 0
	}
	last := 0
	for _, r := range recs {
		if n, v, ok := strings.Cut(r.Key, "@"); ok && n == name {
			if i, err := strconv.Atoi(v); err == nil && i > last {
				last = i
			}
		}
	}
	return last
}

// profile returns the current definition of a profile and its revision.
func (s *Server) profile(ctx context.Context, name string) (api.Profile, int64, error) {
	rec, err := s.cfg.Store.GetRecord(ctx, recProfile, name)
	if err != nil {
		return api.Profile{}, 0, err
	}
	var p api.Profile
	if err := json.Unmarshal(rec.Value, &p); err != nil {
		return api.Profile{}, 0, fmt.Errorf("profile record %q: %w", name, err)
	}
	return p, rec.Revision, nil
}

func errNoProfile(name string) error {
	return &apiError{http.StatusNotFound, api.Error{
		Code:    api.CodeNotFound,
		Message: fmt.Sprintf("no profile named %q", name),
		Hint:    "see `privy profile ls`; profiles come from `privy profile apply privy.yaml`",
	}}
}

func (s *Server) getProfile(rq *request) (any, error) {
	name, err := rq.profileName()
	if err != nil {
		return nil, err
	}
	if err := s.authenticateAny(rq); err != nil {
		return nil, err
	}
	if v := rq.r.URL.Query().Get("version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, badRequest(fmt.Sprintf("version %q is not a positive number", v), "")
		}
		rq.entry.Version = n
		rec, err := s.cfg.Store.GetRecord(rq.ctx, recProfileVersion, versionKey(name, n))
		if errors.Is(err, store.ErrNotFound) {
			return nil, &apiError{http.StatusNotFound, api.Error{Code: api.CodeNotFound, Message: fmt.Sprintf("no version %d of profile %q", n, name)}}
		}
		if err != nil {
			return nil, err
		}
		var p api.Profile
		return p, json.Unmarshal(rec.Value, &p)
	}
	p, _, err := s.profile(rq.ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoProfile(name)
	}
	rq.entry.Version = p.Version
	return p, err
}

func (s *Server) listProfiles(rq *request) (any, error) {
	rq.entry.Path = ":profiles"
	if err := s.authenticateAny(rq); err != nil {
		return nil, err
	}
	recs, err := s.cfg.Store.ListRecords(rq.ctx, recProfile)
	if err != nil {
		return nil, err
	}
	out := api.ProfileList{Profiles: []api.Profile{}}
	for _, r := range recs {
		var p api.Profile
		if err := json.Unmarshal(r.Value, &p); err != nil {
			return nil, fmt.Errorf("profile record %q: %w", r.Key, err)
		}
		out.Profiles = append(out.Profiles, p)
	}
	return out, nil
}

func (s *Server) deleteProfile(rq *request) (any, error) {
	name, err := rq.profileName()
	if err != nil {
		return nil, err
	}
	if err := s.authorize(rq, policy.Admin, sysProfiles); err != nil {
		return nil, err
	}
	if err := s.auditReady(); err != nil {
		return nil, err
	}
	err = s.cfg.Store.DeleteRecord(rq.ctx, recProfile, name, store.AnyRevision)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoProfile(name)
	}
	return struct{}{}, err
}

// authenticateAny admits any valid token or an identified container:
// profile definitions hold store paths and no values.
func (s *Server) authenticateAny(rq *request) error {
	if rq.tok != nil || rq.ctr != nil {
		return nil
	}
	return s.authenticate(rq)
}

// renderProfile serves POST /v1/profiles/{name}/render.
func (s *Server) renderProfile(rq *request) (any, error) {
	name, err := rq.profileName()
	if err != nil {
		return nil, err
	}
	if err := s.authenticateAny(rq); err != nil {
		return nil, err
	}
	var req api.RenderRequest
	if rq.r.ContentLength != 0 {
		if err := decodeJSON(rq.r.Body, 4096, &req); err != nil {
			return nil, err
		}
	}
	var allow func(string) error
	switch {
	case rq.ctr != nil:
		// A container is served its own profile and nothing else.
		if rq.ctr.Profile != name {
			return nil, &apiError{http.StatusForbidden, api.Error{
				Code:    api.CodePermissionDenied,
				Message: fmt.Sprintf("container %s is labelled for profile %q, not %q", short(rq.ctr.ID), rq.ctr.Profile, name),
				Hint:    "start the container with --label " + ContainerLabel + "=" + name,
			}}
		}
		allow = func(string) error { return nil }
	default:
		allow = func(p string) error { return s.authorize(rq, policy.Read, p) }
	}
	return s.render(rq.ctx, &rq.entry, name, req, allow)
}

// Render returns a profile's files with their values, for the volume
// plugin inside the server: who is its audit actor. It writes the
// render's audit line itself.
func (s *Server) Render(ctx context.Context, name string, req api.RenderRequest, who string) (*api.Rendered, error) {
	e := audit.Entry{RequestID: newRequestID(), Actor: who, Op: "profile.render", Path: ":profiles/" + name}
	r, err := s.render(ctx, &e, name, req, func(string) error { return nil })
	rq := &request{ctx: ctx, entry: e}
	_, apiErr := s.classify(rq, err)
	if aerr := s.audit(rq, apiErr); aerr != nil {
		s.log.Error("audit write failed", "request_id", e.RequestID, "err", aerr)
		return nil, errors.New("the audit log cannot be written, so the profile was not rendered")
	}
	if apiErr != nil {
		return nil, &RenderError{Profile: name, Err: *apiErr}
	}
	return r, nil
}

// RenderError is a failed Render, as the API would have reported it.
type RenderError struct {
	Profile string
	Err     api.Error
}

func (e *RenderError) Error() string {
	msg := e.Err.Message
	if e.Err.Hint != "" {
		msg += " (" + e.Err.Hint + ")"
	}
	if !strings.Contains(msg, strconv.Quote(e.Profile)) {
		msg = fmt.Sprintf("profile %q: %s", e.Profile, msg)
	}
	return msg
}

// render reads every secret a profile names, each checked by allow and
// audited as one secret.read line of the same request, and merges the
// per-run files of req.Oneshot, which it then forgets.
func (s *Server) render(ctx context.Context, e *audit.Entry, name string, req api.RenderRequest, allow func(string) error) (*api.Rendered, error) {
	p, _, err := s.profile(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoProfile(name)
	}
	if err != nil {
		return nil, err
	}
	e.Version = p.Version
	out := &api.Rendered{
		Profile: name, Version: p.Version, Files: []api.RenderedFile{},
		HostPrivate: p.HostPrivate, Post: p.Post, OnRotate: p.OnRotate,
	}
	s.keyMu.RLock()
	defer s.keyMu.RUnlock()
	key, err := s.currentKey()
	if err != nil {
		return nil, err
	}
	read := func(secret, what string) ([]byte, int, error) {
		if err := allow(secret); err != nil {
			return nil, 0, err
		}
		v, err := s.cfg.Store.Get(ctx, secret, 0)
		if errors.Is(err, store.ErrNotFound) {
			return nil, 0, &apiError{http.StatusNotFound, api.Error{
				Code:    api.CodeNotFound,
				Message: fmt.Sprintf("profile %q: %s: no secret at %q", name, what, secret),
				Hint:    fmt.Sprintf("store it with `privy secret put %s`, or fix the profile", secret),
			}}
		}
		if err != nil {
			return nil, 0, err
		}
		value, err := key.Open(secret, v.Version, v.Envelope)
		if err != nil {
			return nil, 0, fmt.Errorf("opening secret %q version %d: %w", secret, v.Version, err)
		}
		line := audit.Entry{RequestID: e.RequestID, Actor: e.Actor, Op: "secret.read", Path: secret,
			Version: v.Version, Outcome: audit.OutcomeOK, Extra: map[string]string{"profile": name}}
		if err := s.cfg.Audit.Write(context.WithoutCancel(ctx), line); err != nil {
			clear(value)
			return nil, 0, fmt.Errorf("auditing the read of %q: %w", secret, err)
		}
		return value, v.Version, nil
	}
	byName := map[string]int{}
	add := func(f api.RenderedFile) {
		if i, ok := byName[f.Name]; ok {
			out.Files[i] = f
			return
		}
		byName[f.Name] = len(out.Files)
		out.Files = append(out.Files, f)
	}
	fail := func(err error) (*api.Rendered, error) {
		for _, f := range out.Files {
			clear(f.Value)
		}
		return nil, err
	}
	for _, x := range p.Prefixes {
		metas, err := s.cfg.Store.List(ctx, x.Prefix)
		if err != nil {
			return fail(err)
		}
		uid, gid := profile.IDs(x.Owner)
		for _, m := range metas {
			value, ver, err := read(m.Path, "prefix "+x.Prefix)
			if err != nil {
				return fail(err)
			}
			add(api.RenderedFile{
				Name: path.Join(x.Dir, strings.TrimPrefix(m.Path, x.Prefix)), Secret: m.Path, Version: ver,
				Mode: profile.Mode(x.Owner, profile.DefaultMode), UID: uid, GID: gid, Value: value,
			})
		}
	}
	// Named files override what a prefix delivered under the same name.
	for _, f := range p.Files {
		value, ver, err := read(f.Secret, "file "+f.Name)
		if err != nil {
			return fail(err)
		}
		uid, gid := profile.IDs(f.Owner)
		add(api.RenderedFile{Name: f.Name, Secret: f.Secret, Version: ver,
			Mode: profile.Mode(f.Owner, profile.DefaultMode), UID: uid, GID: gid, Value: value})
	}
	for _, r := range p.Repos {
		rr := api.RenderedRepo{ProfileRepo: r}
		for _, c := range []struct {
			path, what string
			dst        *[]byte
		}{
			{r.SSHKey, "ssh_key", &rr.SSHKeyValue},
			{r.KnownHosts, "known_hosts", &rr.KnownHostsValue},
			{r.Password, "password", &rr.PasswordValue},
			{r.AgeIdentity, "age_identity", &rr.AgeIdentityValue},
		} {
			if c.path == "" {
				continue
			}
			value, _, err := read(c.path, "repo "+profile.RedactURL(r.URL)+" "+c.what)
			if err != nil {
				return fail(err)
			}
			*c.dst = value
		}
		out.Repos = append(out.Repos, rr)
	}
	if req.Oneshot != "" {
		files, err := s.takeOneshot(ctx, key, name, req.Oneshot)
		if err != nil {
			return fail(err)
		}
		e.Extra = mergeExtra(e.Extra, "oneshot", strconv.Itoa(len(files))+" files")
		for _, f := range files {
			add(api.RenderedFile{Name: f.Name, Mode: profile.Mode(api.Owner{Mode: f.Mode}, profile.DefaultMode), Value: f.Value})
		}
	}
	sort.Slice(out.Files, func(i, j int) bool { return out.Files[i].Name < out.Files[j].Name })
	return out, nil
}

func mergeExtra(m map[string]string, k, v string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[k] = v
	return m
}

// oneshotRecord is what the store keeps of per-run files: sealed, under
// the hash of the ticket, so the store never holds the ticket itself.
type oneshotRecord struct {
	Profile  string    `json:"profile"`
	Expires  time.Time `json:"expires"`
	Envelope []byte    `json:"envelope"`
}

func oneshotKey(ticket string) string {
	h := sha256.Sum256([]byte(ticket))
	return hex.EncodeToString(h[:16])
}

const oneshotPrefix = "pvo_"

// createOneshot serves POST /v1/profiles/{name}/oneshot: per-run files for
// one mount of the profile. The caller must be allowed to render the
// profile itself.
func (s *Server) createOneshot(rq *request) (any, error) {
	name, err := rq.profileName()
	if err != nil {
		return nil, err
	}
	if err := s.authenticate(rq); err != nil {
		return nil, err
	}
	if rq.ctr != nil {
		return nil, &apiError{http.StatusForbidden, api.Error{
			Code:    api.CodePermissionDenied,
			Message: fmt.Sprintf("container %s may not add per-run files to mounts", short(rq.ctr.ID)),
			Hint:    "per-run files come from `privy run --private` on the host, with a token",
		}}
	}
	var req api.OneshotRequest
	if err := decodeJSON(rq.r.Body, bodyLimit(s.cfg.MaxValueSize), &req); err != nil {
		return nil, err
	}
	defer func() {
		for _, f := range req.Files {
			clear(f.Value)
		}
	}()
	if len(req.Files) == 0 {
		return nil, badRequest("no files given", "give at least one per-run file")
	}
	total, seen := 0, map[string]bool{}
	for _, f := range req.Files {
		if err := deliver.CheckName(f.Name); err != nil {
			return nil, badRequest(err.Error(), "")
		}
		if seen[f.Name] {
			return nil, badRequest(fmt.Sprintf("two per-run files named %q", f.Name), "")
		}
		seen[f.Name] = true
		if f.Mode&^0o777 != 0 {
			return nil, badRequest(fmt.Sprintf("per-run file %q: mode %#o: only permission bits are allowed", f.Name, f.Mode), "")
		}
		total += len(f.Value)
	}
	if total > s.cfg.MaxValueSize {
		return nil, &apiError{http.StatusRequestEntityTooLarge, api.Error{Code: api.CodeTooLarge,
			Message: fmt.Sprintf("per-run files of %d bytes are over the limit of %d bytes", total, s.cfg.MaxValueSize)}}
	}
	p, _, err := s.profile(rq.ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoProfile(name)
	}
	if err != nil {
		return nil, err
	}
	// Only someone who may read the profile's secrets may add files to
	// its mounts.
	if err := s.mayReadProfile(rq, p); err != nil {
		return nil, err
	}
	if err := s.auditReady(); err != nil {
		return nil, err
	}
	var raw [32]byte
	rand.Read(raw[:])
	ticket := oneshotPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	id := oneshotKey(ticket)
	plain, err := json.Marshal(req.Files)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	s.keyMu.RLock()
	defer s.keyMu.RUnlock()
	key, err := s.currentKey()
	if err != nil {
		return nil, err
	}
	env, err := key.Seal(":oneshot/"+id, 1, plain)
	if err != nil {
		return nil, err
	}
	expires := s.now().UTC().Add(OneshotTTL)
	b, _ := json.Marshal(oneshotRecord{Profile: name, Expires: expires, Envelope: env})
	if _, err := s.cfg.Store.PutRecord(rq.ctx, recOneshot, id, b, 0); err != nil {
		return nil, err
	}
	s.pruneOneshots(rq.ctx)
	rq.entry.Extra = mergeExtra(rq.entry.Extra, "oneshot", id[:12])
	return api.Oneshot{Ticket: ticket, Expires: expires}, nil
}

// mayReadProfile checks that the caller's token may read every secret the
// profile names, now or later: read on each path, and on everything below
// each prefix. A profile that names no secret (host files only) needs
// admin on profiles, so that nobody can fill the store with per-run files.
func (s *Server) mayReadProfile(rq *request, p api.Profile) error {
	paths := profilePaths(p)
	if len(paths) == 0 && len(p.Prefixes) == 0 {
		return s.authorize(rq, policy.Admin, sysProfiles)
	}
	for _, sp := range paths {
		if err := s.authorize(rq, policy.Read, sp); err != nil {
			return err
		}
	}
	for _, x := range p.Prefixes {
		if !rq.tok.Policy.Covers(policy.Policy{{Caps: policy.Read, Glob: x.Prefix + "**"}}) {
			return &policy.DeniedError{Capability: policy.Read, Path: x.Prefix + "**"}
		}
	}
	return nil
}

// profilePaths lists the store paths a profile names (not its prefixes).
func profilePaths(p api.Profile) []string {
	var out []string
	for _, f := range p.Files {
		out = append(out, f.Secret)
	}
	for _, r := range p.Repos {
		for _, c := range []string{r.SSHKey, r.KnownHosts, r.Password, r.AgeIdentity} {
			if c != "" {
				out = append(out, c)
			}
		}
	}
	return out
}

// pruneOneshots drops per-run files whose mount never came.
func (s *Server) pruneOneshots(ctx context.Context) {
	recs, err := s.cfg.Store.ListRecords(ctx, recOneshot)
	if err != nil {
		return
	}
	now := s.now()
	for _, r := range recs {
		var o oneshotRecord
		if json.Unmarshal(r.Value, &o) != nil || now.After(o.Expires) {
			s.cfg.Store.DeleteRecord(ctx, recOneshot, r.Key, r.Revision)
		}
	}
}

var errBadTicket = &apiError{http.StatusNotFound, api.Error{
	Code:    api.CodeNotFound,
	Message: "the per-run files' ticket is unknown, already used or expired",
	Hint:    "per-run files serve exactly one mount within 10 minutes; run `privy run` again",
}}

// takeOneshot returns the per-run files of ticket and deletes them, so
// that they serve exactly one mount. The caller holds keyMu.
func (s *Server) takeOneshot(ctx context.Context, key *seal.Key, name, ticket string) ([]api.OneshotFile, error) {
	if !strings.HasPrefix(ticket, oneshotPrefix) {
		return nil, errBadTicket
	}
	id := oneshotKey(ticket)
	rec, err := s.cfg.Store.GetRecord(ctx, recOneshot, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errBadTicket
	}
	if err != nil {
		return nil, err
	}
	var o oneshotRecord
	if err := json.Unmarshal(rec.Value, &o); err != nil {
		return nil, fmt.Errorf("per-run files record: %w", err)
	}
	if o.Profile != name {
		return nil, badRequest(fmt.Sprintf("the per-run files' ticket was made for profile %q, not %q", o.Profile, name), "")
	}
	// Delete before use: of two mounts racing for one ticket, one wins.
	if err := s.cfg.Store.DeleteRecord(ctx, recOneshot, id, rec.Revision); err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
			return nil, errBadTicket
		}
		return nil, err
	}
	if s.now().After(o.Expires) {
		return nil, errBadTicket
	}
	plain, err := key.Open(":oneshot/"+id, 1, o.Envelope)
	if err != nil {
		return nil, fmt.Errorf("opening per-run files: %w", err)
	}
	defer clear(plain)
	var files []api.OneshotFile
	if err := json.Unmarshal(plain, &files); err != nil {
		return nil, fmt.Errorf("per-run files: %w", err)
	}
	return files, nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Uses reports whether a profile reads the secret at secretPath.
func Uses(p api.Profile, secretPath string) bool {
	for _, f := range p.Files {
		if f.Secret == secretPath {
			return true
		}
	}
	for _, x := range p.Prefixes {
		if strings.HasPrefix(secretPath, x.Prefix) {
			return true
		}
	}
	for _, r := range p.Repos {
		if secretPath == r.SSHKey || secretPath == r.KnownHosts || secretPath == r.Password || secretPath == r.AgeIdentity {
			return true
		}
	}
	return false
}

// watchProfile serves GET /v1/profiles/{name}/watch: one JSON line for
// each new version of a secret the profile reads, until the client goes
// away. A line with an empty path means changes were dropped (the client
// was slow): render again.
func (s *Server) watchProfile(rq *request) (any, error) {
	name, err := rq.profileName()
	if err != nil {
		return nil, err
	}
	if err := s.authenticateAny(rq); err != nil {
		return nil, err
	}
	p, _, err := s.profile(rq.ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoProfile(name)
	}
	if err != nil {
		return nil, err
	}
	if rq.ctr != nil {
		if rq.ctr.Profile != name {
			return nil, &apiError{http.StatusForbidden, api.Error{
				Code:    api.CodePermissionDenied,
				Message: fmt.Sprintf("container %s is labelled for profile %q, not %q", short(rq.ctr.ID), rq.ctr.Profile, name),
			}}
		}
	} else if err := s.mayReadProfile(rq, p); err != nil {
		return nil, err
	}
	changes := make(chan api.Change, 64)
	cancelSub := s.Subscribe(func(c api.Change) {
		if !Uses(p, c.Path) {
			return
		}
		select {
		case changes <- c:
		default:
			select { // full: tell the client to resynchronise
			case <-changes:
			default:
			}
			select {
			case changes <- api.Change{}:
			default:
			}
		}
	})
	defer cancelSub()
	if err := s.audit(rq, nil); err != nil {
		return nil, err
	}
	rq.streamed = true
	rq.w.Header().Set("Content-Type", "application/x-ndjson")
	rq.w.WriteHeader(http.StatusOK)
	flush(rq.w)
	ctx, cancel := context.WithCancel(rq.ctx)
	defer cancel()
	defer context.AfterFunc(s.streams, cancel)()
	for {
		select {
		case <-ctx.Done():
			return nil, nil
		case c := <-changes:
			b, _ := json.Marshal(c)
			if _, err := rq.w.Write(append(b, '\n')); err != nil {
				return nil, nil
			}
			flush(rq.w)
		}
	}
}

// Profile returns a profile's current definition, for the volume plugin
// inside the server (it decides which mounts a secret's change concerns).
func (s *Server) Profile(ctx context.Context, name string) (*api.Profile, error) {
	p, _, err := s.profile(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoProfile(name)
	}
	if err != nil {
		return nil, err
	}
	return &p, nil
}

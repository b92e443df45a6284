package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/audit"
	"github.com/privyhq/privy/internal/seal"
	"github.com/privyhq/privy/internal/server"
	"github.com/privyhq/privy/internal/token"
)

// twin serves a second server over e's store with the same master key and
// clock, on a socket and with an audit log of its own, as a second privy
// server sharing an etcd store would be. It returns its socket and audit
// log.
func (e *env) twin(t *testing.T) (sock, auditPath string) {
	t.Helper()
	dir := shortDir(t)
	sock, auditPath = filepath.Join(dir, "privy.sock"), filepath.Join(dir, "audit.log")
	alog, err := audit.Open(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	key, err := seal.NewKey(e.rawKey)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(context.Background(), server.Config{
		Store: e.store, StoreName: "memory", Audit: alog, AuditFile: auditPath,
		KeySource: "env", Key: key, Logger: newLogger(e.logs), Now: e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alog.Close() })
	serve(t, srv, sock)
	return sock, auditPath
}

// newID returns a fresh request id as privy's client makes them.
func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// sendID sends a request with Privy-Request-Id id (none if "") to the
// server on sock and returns the status and body.
func sendID(t *testing.T, sock, method, target, tok, id string, body any) (int, []byte) {
	t.Helper()
	var in []byte
	if body != nil {
		var err error
		if in, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequest(method, "http://privy"+target, bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if id != "" {
		req.Header.Set("Privy-Request-Id", id)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes()
}

// readAudit parses the audit log at path.
func readAudit(t *testing.T, path string) []audit.Entry {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Entry
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var en audit.Entry
		if err := json.Unmarshal(sc.Bytes(), &en); err != nil {
			t.Fatalf("audit line %q: %v", sc.Bytes(), err)
		}
		out = append(out, en)
	}
	return out
}

// versions returns how many versions of path are kept.
func (e *env) versions(t *testing.T, path string) int {
	t.Helper()
	h, err := e.store.History(context.Background(), path)
	if err != nil {
		t.Fatalf("History(%q): %v", path, err)
	}
	return len(h)
}

// wantReplay checks that the last audit line of op in entries is a replay
// of the request the first such line records.
func wantReplay(t *testing.T, entries []audit.Entry, first audit.Entry, op string) {
	t.Helper()
	var last audit.Entry
	for _, en := range entries {
		if en.Op == op {
			last = en
		}
	}
	if last.Outcome != "ok" || last.Extra["replay"] != "true" || last.Extra["replay_of"] != first.RequestID ||
		last.Path != first.Path || last.Version != first.Version || last.RequestID == first.RequestID {
		t.Errorf("audit line of the repeat = %+v, want outcome ok, extra replay=true, replay_of=%s, path %q, version %d",
			last, first.RequestID, first.Path, first.Version)
	}
}

func TestRequestIDPutSecretOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	id := newID()
	v := e.value()
	st1, b1 := sendID(t, e.sock, "PUT", "/v1/secrets/app/db", e.root, id, api.PutSecretRequest{Value: v})
	st2, b2 := sendID(t, e.sock, "PUT", "/v1/secrets/app/db", e.root, id, api.PutSecretRequest{Value: v})
	if st1 != 200 || st2 != 200 || !bytes.Equal(b1, b2) {
		t.Fatalf("two PUTs with one id: %d %s and %d %s, want two identical 200 replies", st1, b1, st2, b2)
	}
	if n := e.versions(t, "app/db"); n != 1 {
		t.Errorf("versions after a repeated PUT = %d, want 1", n)
	}
	entries := e.auditEntries()
	puts, _ := linesOf(entries, "secret.put")
	if len(puts) != 2 {
		t.Fatalf("audit lines of secret.put = %d, want 2 (the write and its replay)", len(puts))
	}
	if puts[0].Extra["replay"] != "" || puts[0].Version != 1 {
		t.Errorf("first audit line = %+v, want version 1 and no replay", puts[0])
	}
	wantReplay(t, entries, puts[0], "secret.put")

	// Another id is another write.
	if st, b := sendID(t, e.sock, "PUT", "/v1/secrets/app/db", e.root, newID(), api.PutSecretRequest{Value: v}); st != 200 {
		t.Fatalf("PUT with a new id: %d %s", st, b)
	}
	if n := e.versions(t, "app/db"); n != 2 {
		t.Errorf("versions after a second id = %d, want 2", n)
	}
	// No id, no deduplication, as before.
	for range 2 {
		if st, b := sendID(t, e.sock, "PUT", "/v1/secrets/app/db", e.root, "", api.PutSecretRequest{Value: v}); st != 200 {
			t.Fatalf("PUT without an id: %d %s", st, b)
		}
	}
	if n := e.versions(t, "app/db"); n != 4 {
		t.Errorf("versions after two PUTs without an id = %d, want 4", n)
	}
}

func TestRequestIDAcrossServers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	sockB, auditB := e.twin(t)
	id := newID()
	v := e.value()
	st1, b1 := sendID(t, e.sock, "PUT", "/v1/secrets/app/db", e.root, id, api.PutSecretRequest{Value: v})
	st2, b2 := sendID(t, sockB, "PUT", "/v1/secrets/app/db", e.root, id, api.PutSecretRequest{Value: v})
	if st1 != 200 || st2 != 200 || !bytes.Equal(b1, b2) {
		t.Fatalf("PUT on A then B with one id: %d %s and %d %s, want two identical 200 replies", st1, b1, st2, b2)
	}
	if n := e.versions(t, "app/db"); n != 1 {
		t.Errorf("versions = %d, want 1", n)
	}
	puts, _ := linesOf(e.auditEntries(), "secret.put")
	if len(puts) != 1 {
		t.Fatalf("server A audited %d secret.put lines, want 1", len(puts))
	}
	wantReplay(t, readAudit(t, auditB), puts[0], "secret.put")

	// A delete repeated on the other server is done once: the second
	// delete would have failed with not found.
	id = newID()
	if st, b := sendID(t, sockB, "DELETE", "/v1/secrets/app/db", e.root, id, nil); st != 200 {
		t.Fatalf("DELETE on B: %d %s", st, b)
	}
	if st, b := sendID(t, e.sock, "DELETE", "/v1/secrets/app/db", e.root, id, nil); st != 200 {
		t.Fatalf("the same DELETE on A: %d %s, want the recorded 200", st, b)
	}
}

func TestRequestIDPerCaller(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a, b := e.tokenWith(t, "write:app/**"), e.tokenWith(t, "write:app/**")
	id := newID()
	for _, tok := range []string{a, b} {
		if st, body := sendID(t, e.sock, "PUT", "/v1/secrets/app/db", tok, id, api.PutSecretRequest{Value: e.value()}); st != 200 {
			t.Fatalf("PUT: %d %s", st, body)
		}
	}
	if n := e.versions(t, "app/db"); n != 2 {
		t.Errorf("two callers with one id stored %d versions, want 2", n)
	}
}

func TestRequestIDRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	id := newID()
	if st, b := sendID(t, e.sock, "PUT", "/v1/secrets/app/a", e.root, id, api.PutSecretRequest{Value: e.value()}); st != 200 {
		t.Fatalf("PUT: %d %s", st, b)
	}
	tests := []struct {
		name, target, id string
		want             int
	}{
		{"id used for another path", "/v1/secrets/app/b", id, 400},
		{"too short", "/v1/secrets/app/c", "abc", 400},
		{"bad characters", "/v1/secrets/app/c", "0123456789abcdef\"x", 400},
	}
	for _, tt := range tests {
		st, b := sendID(t, e.sock, "PUT", tt.target, e.root, tt.id, api.PutSecretRequest{Value: e.value()})
		var eb api.ErrorBody
		json.Unmarshal(b, &eb)
		hygiene.addText(eb.Error.Message, eb.Error.Hint)
		if st != tt.want || eb.Error.Code != api.CodeInvalid {
			t.Errorf("%s: got %d %s, want %d invalid", tt.name, st, b, tt.want)
		}
	}
	if _, err := e.store.History(context.Background(), "app/b"); err == nil {
		t.Error("a refused id stored a secret")
	}
}

// A write that failed did nothing, so the same id may do it later.
func TestRequestIDFailedWriteNotKept(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	id := newID()
	if st, b := sendID(t, e.sock, "DELETE", "/v1/secrets/app/db", e.root, id, nil); st != 404 {
		t.Fatalf("DELETE of a missing secret: %d %s, want 404", st, b)
	}
	e.put(t, e.client(e.root), "app/db", e.value())
	if st, b := sendID(t, e.sock, "DELETE", "/v1/secrets/app/db", e.root, id, nil); st != 200 {
		t.Fatalf("the same DELETE once the secret exists: %d %s, want 200", st, b)
	}
	if _, err := e.store.History(context.Background(), "app/db"); err == nil {
		t.Error("the secret is still visible")
	}
}

func TestRequestIDConcurrent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	sockB, _ := e.twin(t)
	id := newID()
	v := e.value()
	const n = 8
	var wg sync.WaitGroup
	status := make([]int, n)
	bodies := make([][]byte, n)
	for i := range n {
		sock := e.sock
		if i%2 == 1 {
			sock = sockB
		}
		wg.Go(func() {
			status[i], bodies[i] = sendID(t, sock, "PUT", "/v1/secrets/app/db", e.root, id, api.PutSecretRequest{Value: v})
		})
	}
	wg.Wait()
	for i := range n {
		if status[i] != 200 || !bytes.Equal(bodies[i], bodies[0]) {
			t.Errorf("request %d: %d %s, want 200 %s", i, status[i], bodies[i], bodies[0])
		}
	}
	if got := e.versions(t, "app/db"); got != 1 {
		t.Errorf("%d racing PUTs with one id stored %d versions, want 1", n, got)
	}
}

func TestRequestIDExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	id := newID()
	put := func() {
		t.Helper()
		if st, b := sendID(t, e.sock, "PUT", "/v1/secrets/app/db", e.root, id, api.PutSecretRequest{Value: e.value()}); st != 200 {
			t.Fatalf("PUT: %d %s", st, b)
		}
	}
	put()
	e.clock.Advance(server.RequestTTL + 1)
	put()
	if n := e.versions(t, "app/db"); n != 2 {
		t.Errorf("a repeat after %v stored %d versions in all, want 2", server.RequestTTL, n)
	}
	// The sweep of the new claim dropped the expired records of other ids.
	other := newID()
	if st, b := sendID(t, e.sock, "DELETE", "/v1/secrets/app/db", e.root, other, nil); st != 200 {
		t.Fatalf("DELETE: %d %s", st, b)
	}
	e.clock.Advance(server.RequestTTL + 1)
	put()
	recs, err := e.store.ListRecords(ctx, "request")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Errorf("request records after expiry = %d, want 1 (the DELETE's expired, swept)", len(recs))
	}
}

// Replies with a secret are kept sealed: the store never holds a value, a
// token or a ticket in clear, and a repeat still gets them.
func TestRequestIDNoSecretInStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	sockB, auditB := e.twin(t)
	v := e.value()
	if st, b := sendID(t, e.sock, "PUT", "/v1/secrets/app/db", e.root, newID(), api.PutSecretRequest{Value: v}); st != 200 {
		t.Fatalf("PUT: %d %s", st, b)
	}

	id := newID()
	req := api.CreateTokenRequest{Name: "web", Rules: []string{"read:app/**"}}
	st1, b1 := sendID(t, e.sock, "POST", "/v1/tokens", e.root, id, req)
	st2, b2 := sendID(t, sockB, "POST", "/v1/tokens", e.root, id, req)
	var nt api.NewToken
	if err := json.Unmarshal(b1, &nt); err != nil || st1 != 200 || st2 != 200 || !bytes.Equal(b1, b2) {
		t.Fatalf("POST /v1/tokens twice with one id: %d and %d, want two identical 200 replies", st1, st2)
	}
	e.note([]byte(nt.Token))
	toks, err := token.List(ctx, e.store)
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 2 { // root and web
		t.Errorf("tokens after a repeated create = %d, want 2", len(toks))
	}
	creates, _ := linesOf(e.auditEntries(), "token.create")
	wantReplay(t, readAudit(t, auditB), creates[len(creates)-1], "token.create")

	e.put(t, e.client(e.root), "app/key", e.value())
	putProfile(t, e.client(e.root), api.Profile{Name: "web", Files: []api.ProfileFile{{Name: "key", Secret: "app/key"}}})
	file := e.value()
	id = newID()
	oreq := api.OneshotRequest{Files: []api.OneshotFile{{Name: "extra", Value: file}}}
	st1, b1 = sendID(t, e.sock, "POST", "/v1/profiles/web/oneshot", e.root, id, oreq)
	st2, b2 = sendID(t, sockB, "POST", "/v1/profiles/web/oneshot", e.root, id, oreq)
	var os1 api.Oneshot
	if err := json.Unmarshal(b1, &os1); err != nil || st1 != 200 || st2 != 200 || !bytes.Equal(b1, b2) {
		t.Fatalf("POST oneshot twice with one id: %d and %d, want two identical 200 replies", st1, st2)
	}
	e.note([]byte(os1.Ticket))
	if recs, _ := e.store.ListRecords(ctx, "oneshot"); len(recs) != 1 {
		t.Errorf("per-run file sets after a repeated oneshot = %d, want 1", len(recs))
	}

	reqs, err := e.store.ListRecords(ctx, "request")
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 3 {
		t.Errorf("request records = %d, want 3", len(reqs))
	}
	for _, kind := range []string{"request", token.Kind, "profile", "profile-version", "oneshot"} {
		recs, err := e.store.ListRecords(ctx, kind)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			for _, secret := range [][]byte{v, []byte(nt.Token), []byte(os1.Ticket), file} {
				if bytes.Contains(r.Value, secret) {
					t.Errorf("record %s/%s holds %q in clear", kind, r.Key, secret)
				}
			}
		}
	}
}

// A reply with a secret sealed with a key that was rotated away since is
// not repeated: the repeat learns the write was done.
func TestRequestIDSecretReplyAfterRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{keyFile: true})
	id := newID()
	req := api.CreateTokenRequest{Rules: []string{"read:app/**"}}
	st, b := sendID(t, e.sock, "POST", "/v1/tokens", e.root, id, req)
	var nt api.NewToken
	if json.Unmarshal(b, &nt); st != 200 {
		t.Fatalf("POST /v1/tokens: %d %s", st, b)
	}
	e.note([]byte(nt.Token))
	if _, err := e.client(e.root).RotateMasterKey(context.Background(), api.RotateRequest{}); err != nil {
		t.Fatalf("RotateMasterKey: %v", err)
	}
	if nk, err := os.ReadFile(e.keyFile); err == nil {
		e.note(bytes.TrimSpace(nk))
	}
	st, b = sendID(t, e.sock, "POST", "/v1/tokens", e.root, id, req)
	var eb api.ErrorBody
	json.Unmarshal(b, &eb)
	hygiene.addText(eb.Error.Message, eb.Error.Hint)
	if st != 409 || eb.Error.Code != api.CodeConflict {
		t.Errorf("repeat after rotation: %d %s, want 409 conflict", st, b)
	}
	if toks, _ := token.List(context.Background(), e.store); len(toks) != 2 {
		t.Errorf("tokens = %d, want 2: the repeat must not create one", len(toks))
	}
}

// A claim whose server never finished (it stopped mid-request) makes a
// repeat wait and then answer "in progress"; once the claim's lease is over,
// the repeat does the write.
func TestRequestIDUnfinishedClaim(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	id := newID()
	// What a server that stopped mid-request leaves behind.
	claim, _ := json.Marshal(map[string]any{
		"method": "PUT", "url": "/v1/secrets/app/db", "expires": e.clock.Now().Add(30 * time.Second),
	})
	if _, err := e.store.PutRecord(ctx, "request", token.Accessor(e.root)+"."+id, claim, 0); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	st, b := sendID(t, e.sock, "PUT", "/v1/secrets/app/db", e.root, id, api.PutSecretRequest{Value: e.value()})
	var eb api.ErrorBody
	json.Unmarshal(b, &eb)
	hygiene.addText(eb.Error.Message, eb.Error.Hint)
	if st != 409 || eb.Error.Code != api.CodeConflict || !strings.Contains(eb.Error.Message, "in progress") {
		t.Errorf("repeat of an unfinished request: %d %s, want 409 in progress", st, b)
	}
	if waited := time.Since(start); waited < 2*time.Second {
		t.Errorf("the repeat answered after %v, want it to wait for the first request", waited)
	}
	if _, err := e.store.History(ctx, "app/db"); err == nil {
		t.Error("the repeat wrote while the claim was held")
	}
	e.clock.Advance(31 * time.Second)
	if st, b := sendID(t, e.sock, "PUT", "/v1/secrets/app/db", e.root, id, api.PutSecretRequest{Value: e.value()}); st != 200 {
		t.Fatalf("repeat after the lease: %d %s, want 200", st, b)
	}
	if n := e.versions(t, "app/db"); n != 1 {
		t.Errorf("versions = %d, want 1", n)
	}
}

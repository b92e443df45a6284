package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/client"
	"github.com/privyhq/privy/internal/audit"
	"github.com/privyhq/privy/internal/seal"
	"github.com/privyhq/privy/internal/token"
)

// TestAuditEveryRequest makes one request of every kind, allowed or not,
// and checks that each wrote exactly one audit line saying who did what to
// which path and how it ended.
func TestAuditEveryRequest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	root, anon := e.client(e.root), e.client("")
	readerTok := e.tokenWith(t, "read:app/web/**")
	reader := e.client(readerTok)
	victim := e.token(t, api.CreateTokenRequest{Rules: []string{"read:app/**"}})
	unknownTok, _ := token.Generate()
	e.note([]byte(unknownTok))
	wrongKey, _ := seal.GenerateKey()
	e.note(wrongKey, []byte(seal.EncodeKey(wrongKey)))
	e.put(t, root, "app/gone", e.value())

	rootActor := "token:" + token.Accessor(e.root)
	readerActor := "token:" + token.Accessor(readerTok)
	tests := []struct {
		name string
		do   func() error
		want audit.Entry // Op, Outcome, Actor, Path, Version
	}{
		{"status", func() error { _, err := anon.Status(ctx); return err },
			audit.Entry{Op: "sys.status", Outcome: "ok", Actor: peerActor()}},
		{"put", func() error { _, err := root.PutSecret(ctx, "app/web/a", e.value()); return err },
			audit.Entry{Op: "secret.put", Outcome: "ok", Actor: rootActor, Path: "app/web/a", Version: 1}},
		{"put again", func() error { _, err := root.PutSecret(ctx, "app/web/a", e.value()); return err },
			audit.Entry{Op: "secret.put", Outcome: "ok", Actor: rootActor, Path: "app/web/a", Version: 2}},
		{"get latest", func() error { _, err := reader.GetSecret(ctx, "app/web/a", 0); return err },
			audit.Entry{Op: "secret.get", Outcome: "ok", Actor: readerActor, Path: "app/web/a", Version: 2}},
		{"get version", func() error { _, err := root.GetSecret(ctx, "app/web/a", 1); return err },
			audit.Entry{Op: "secret.get", Outcome: "ok", Actor: rootActor, Path: "app/web/a", Version: 1}},
		{"get missing", func() error { _, err := root.GetSecret(ctx, "app/missing", 0); return err },
			audit.Entry{Op: "secret.get", Outcome: "not_found", Actor: rootActor, Path: "app/missing"}},
		{"get denied", func() error { _, err := reader.GetSecret(ctx, "app/db/x", 0); return err },
			audit.Entry{Op: "secret.get", Outcome: "denied", Actor: readerActor, Path: "app/db/x"}},
		{"put denied", func() error { _, err := reader.PutSecret(ctx, "app/web/a", e.value()); return err },
			audit.Entry{Op: "secret.put", Outcome: "denied", Actor: readerActor, Path: "app/web/a"}},
		{"no token", func() error { _, err := anon.GetSecret(ctx, "app/web/a", 0); return err },
			audit.Entry{Op: "secret.get", Outcome: "denied", Actor: peerActor(), Path: "app/web/a"}},
		{"malformed token", func() error { _, err := e.client("garbage").GetSecret(ctx, "app/web/a", 0); return err },
			audit.Entry{Op: "secret.get", Outcome: "denied", Actor: peerActor(), Path: "app/web/a"}},
		{"unknown token", func() error { _, err := e.client(unknownTok).GetSecret(ctx, "app/web/a", 0); return err },
			audit.Entry{Op: "secret.get", Outcome: "denied", Actor: "token:" + token.Accessor(unknownTok), Path: "app/web/a"}},
		{"invalid path", func() error { _, err := root.PutSecret(ctx, "App/X", e.value()); return err },
			audit.Entry{Op: "secret.put", Outcome: "invalid", Actor: peerActor(), Path: "App/X"}},
		{"unclean path", func() error { return root.DeleteSecret(ctx, "app/../gone", true) },
			audit.Entry{Op: "secret.destroy", Outcome: "invalid", Actor: peerActor(), Path: "app/../gone"}},
		{"too large", func() error { _, err := root.PutSecret(ctx, "app/big", make([]byte, 2<<20)); return err },
			audit.Entry{Op: "secret.put", Outcome: "invalid", Actor: rootActor, Path: "app/big"}},
		{"list", func() error { _, err := root.ListSecrets(ctx, "app/"); return err },
			audit.Entry{Op: "secret.list", Outcome: "ok", Actor: rootActor, Path: "app/"}},
		{"list denied", func() error { _, err := reader.ListSecrets(ctx, "app/"); return err },
			audit.Entry{Op: "secret.list", Outcome: "denied", Actor: readerActor, Path: "app/"}},
		{"history", func() error { _, err := root.History(ctx, "app/web/a"); return err },
			audit.Entry{Op: "secret.history", Outcome: "ok", Actor: rootActor, Path: "app/web/a"}},
		{"hide", func() error { return root.DeleteSecret(ctx, "app/web/a", false) },
			audit.Entry{Op: "secret.delete", Outcome: "ok", Actor: rootActor, Path: "app/web/a"}},
		{"destroy", func() error { return root.DeleteSecret(ctx, "app/gone", true) },
			audit.Entry{Op: "secret.destroy", Outcome: "ok", Actor: rootActor, Path: "app/gone"}},
		{"create token", func() error { e.token(t, api.CreateTokenRequest{Rules: []string{"read:**"}}); return nil },
			audit.Entry{Op: "token.create", Outcome: "ok", Actor: rootActor}},
		{"create token denied", func() error {
			_, err := reader.CreateToken(ctx, api.CreateTokenRequest{Rules: []string{"read:**"}})
			return err
		}, audit.Entry{Op: "token.create", Outcome: "denied", Actor: readerActor}},
		{"list tokens", func() error { _, err := root.ListTokens(ctx); return err },
			audit.Entry{Op: "token.list", Outcome: "ok", Actor: rootActor}},
		{"token self", func() error { _, err := reader.TokenSelf(ctx); return err },
			audit.Entry{Op: "token.self", Outcome: "ok", Actor: readerActor}},
		{"revoke", func() error { return root.RevokeToken(ctx, victim.Accessor) },
			audit.Entry{Op: "token.revoke", Outcome: "ok", Actor: rootActor, Path: victim.Accessor}},
		{"revoke unknown", func() error { return root.RevokeToken(ctx, "0123") },
			audit.Entry{Op: "token.revoke", Outcome: "not_found", Actor: rootActor, Path: "0123"}},
		{"unseal wrong key", func() error {
			_, err := anon.Unseal(ctx, api.UnsealRequest{Key: seal.EncodeKey(wrongKey)})
			return err
		}, audit.Entry{Op: "sys.unseal", Outcome: "denied", Actor: peerActor()}},
		{"rotate denied", func() error { _, err := reader.RotateMasterKey(ctx, api.RotateRequest{}); return err },
			audit.Entry{Op: "sys.rotate-master-key", Outcome: "denied", Actor: readerActor}},
		{"audit verify", func() error { _, err := root.AuditVerify(ctx); return err },
			audit.Entry{Op: "audit.verify", Outcome: "ok", Actor: rootActor}},
		{"audit tail", func() error { return root.AuditTail(ctx, 2, false, func([]byte) error { return nil }) },
			audit.Entry{Op: "audit.tail", Outcome: "ok", Actor: rootActor}},
		{"audit tail denied", func() error { return reader.AuditTail(ctx, 2, false, func([]byte) error { return nil }) },
			audit.Entry{Op: "audit.tail", Outcome: "denied", Actor: readerActor}},
		{"unknown endpoint", func() error { e.raw(t, http.MethodGet, "/v1/nope", "", nil); return nil },
			audit.Entry{Op: "unknown", Outcome: "invalid", Actor: peerActor()}},
	}
	for _, tt := range tests {
		before := len(e.auditEntries())
		e.noteErr(tt.do())
		entries := e.auditEntries()
		if len(entries) != before+1 {
			t.Errorf("%s: wrote %d audit lines, want 1", tt.name, len(entries)-before)
			continue
		}
		got := entries[len(entries)-1]
		if got.Op != tt.want.Op || got.Outcome != tt.want.Outcome || got.Actor != tt.want.Actor ||
			got.Path != tt.want.Path || got.Version != tt.want.Version {
			t.Errorf("%s: got op %q outcome %q actor %q path %q version %d,\n\twant op %q outcome %q actor %q path %q version %d",
				tt.name, got.Op, got.Outcome, got.Actor, got.Path, got.Version,
				tt.want.Op, tt.want.Outcome, tt.want.Actor, tt.want.Path, tt.want.Version)
		}
		if got.RequestID == "" || got.Time.IsZero() {
			t.Errorf("%s: line has no request id or time: %+v", tt.name, got)
		}
		if (got.Outcome == "ok") != (got.Reason == "") {
			t.Errorf("%s: outcome %q with reason %q", tt.name, got.Outcome, got.Reason)
		}
	}

	f, err := os.Open(e.auditPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sum, err := audit.Verify(f)
	if err != nil {
		t.Errorf("audit.Verify: %v", err)
	}
	if n := len(e.auditEntries()); sum.Lines != n {
		t.Errorf("audit.Verify checked %d lines, want %d", sum.Lines, n)
	}
	log := e.auditLog()
	if bytes.Contains(log, []byte(token.Prefix)) {
		t.Errorf("the audit log holds a token string:\n%s", log)
	}
}

func TestAuditVerifyAndTail(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	root := e.client(e.root)
	for range 5 {
		e.put(t, root, "app/x", e.value())
	}

	before := len(e.auditEntries())
	res, err := root.AuditVerify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The verify request's own line is written after it read the file.
	if !res.OK || res.Lines != before || res.LastSeq != uint64(before) || len(res.Head) != 64 || res.Error != "" {
		t.Errorf("AuditVerify = %+v, want ok over %d lines", res, before)
	}

	var got [][]byte
	err = root.AuditTail(ctx, 3, false, func(line []byte) error {
		got = append(got, bytes.Clone(line))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(e.auditLog(), []byte("\n")), []byte("\n"))
	want := lines[len(lines)-3:]
	if len(got) != 3 {
		t.Fatalf("AuditTail(3) gave %d lines, want 3", len(got))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("tail line %d = %s, want %s", i, got[i], want[i])
		}
	}
	if !bytes.Contains(got[2], []byte(`"op":"audit.tail"`)) {
		t.Errorf("the last tailed line is %s, want the tail request's own", got[2])
	}
	for _, n := range []string{"-1", "x"} {
		if status, _ := e.raw(t, http.MethodGet, "/v1/audit?n="+n, e.root, nil); status != http.StatusBadRequest {
			t.Errorf("n=%s: got status %d, want 400", n, status)
		}
	}

	// Edit a line in the middle, keeping its length: verify finds it.
	log := e.auditLog()
	i := bytes.Index(log, []byte(`"op":"secret.put"`))
	edited := bytes.Clone(log)
	copy(edited[i:], `"op":"secret.get"`)
	if err := os.WriteFile(e.auditPath, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err = root.AuditVerify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.Error == "" || res.Line == 0 {
		t.Errorf("AuditVerify after an edit = %+v, want a broken chain", res)
	}
}

func TestAuditTailFollow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	root := e.client(e.root)
	lines := make(chan []byte, 16)
	follow := func(ctx context.Context) chan error {
		done := make(chan error, 1)
		go func() {
			done <- root.AuditTail(ctx, 1, true, func(line []byte) error {
				lines <- bytes.Clone(line)
				return nil
			})
		}()
		return done
	}
	next := func(what string) []byte {
		t.Helper()
		select {
		case l := <-lines:
			return l
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no line followed", what)
			return nil
		}
	}

	// The client going away ends the stream. The first line is the tail
	// request's own, which says the stream is there.
	ctx, cancel := context.WithCancel(context.Background())
	done := follow(ctx)
	if l := next("tail"); !bytes.Contains(l, []byte(`"op":"audit.tail"`)) {
		t.Fatalf("first line %s, want the tail request's own", l)
	}
	e.put(t, root, "app/followed", e.value())
	for l := next("put"); !bytes.Contains(l, []byte(`"op":"secret.put"`)); l = next("put") {
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("AuditTail after cancel: got %v, want context.Canceled", err)
	}

	// So does the server shutting down, without waiting for the client.
	done = follow(context.Background())
	next("second tail")
	e.put(t, root, "app/followed", e.value())
	for l := next("second put"); !bytes.Contains(l, []byte(`"op":"secret.put"`)); l = next("second put") {
	}
	start := time.Now()
	e.stop()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %v with a follower attached", d)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("AuditTail after shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("the follower did not end with the server")
	}
}

// failingWriter is an audit log on a disk that broke: once fail is set,
// every write fails.
type failingWriter struct {
	w    audit.Writer
	fail atomic.Bool
}

func (f *failingWriter) Write(ctx context.Context, e audit.Entry) error {
	if f.fail.Load() {
		return errors.New("write audit.log: input/output error")
	}
	return f.w.Write(ctx, e)
}

// Err reports the broken disk, as *audit.Log does once a write failed.
func (f *failingWriter) Err() error {
	if f.fail.Load() {
		return errors.New("audit log failed")
	}
	return nil
}

func TestAuditFailureFailsRequest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fw := &failingWriter{}
	e := newEnv(t, envOptions{wrapAudit: func(w audit.Writer) audit.Writer { fw.w = w; return fw }})
	root := e.client(e.root)
	v := e.value()
	e.put(t, root, "app/x", v)

	fw.fail.Store(true)
	calls := map[string]func() error{
		"get":    func() error { _, err := root.GetSecret(ctx, "app/x", 0); return err },
		"put":    func() error { _, err := root.PutSecret(ctx, "app/y", e.value()); return err },
		"status": func() error { _, err := root.Status(ctx); return err },
		"denied": func() error { _, err := e.client("").GetSecret(ctx, "app/x", 0); return err },
		"tail":   func() error { return root.AuditTail(ctx, 1, false, func([]byte) error { return nil }) },
	}
	for name, call := range calls {
		ce := e.wantErr(t, name, call(), client.ErrInternal)
		if ce.Status != http.StatusInternalServerError || !strings.Contains(ce.Message, "audit log") {
			t.Errorf("%s: got %d %q, want 500 naming the audit log", name, ce.Status, ce.Message)
		}
	}
	status, body := e.raw(t, http.MethodGet, "/v1/secrets/app/x", e.root, nil)
	if status != http.StatusInternalServerError {
		t.Errorf("raw get: got status %d, want 500", status)
	}
	if bytes.Contains(body, v) || bytes.Contains(body, []byte(base64.StdEncoding.EncodeToString(v))) {
		t.Errorf("the value was sent although its read was not audited: %s", body)
	}
	if !strings.Contains(e.logs.String(), "audit write failed") {
		t.Errorf("the server log does not report the audit failure:\n%s", e.logs)
	}

	fw.fail.Store(false)
	// The refused put must not have been made: a known-broken audit log
	// stops changes before they happen.
	if _, err := root.GetSecret(ctx, "app/y", 0); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("a put refused for a broken audit log was stored anyway (get: %v)", err)
	}
	if got := e.get(t, root, "app/x", 0); !bytes.Equal(got.Value, v) {
		t.Errorf("after the disk came back: got %q, want %q", got.Value, v)
	}
}

package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/privyhq/privy/client"
	"github.com/privyhq/privy/internal/server"
)

func TestSecretRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.client(e.root)
	allBytes := make([]byte, 256)
	for i := range allBytes {
		allBytes[i] = byte(i)
	}
	largest := make([]byte, server.DefaultMaxValueSize)
	rand.Read(largest)
	tests := []struct {
		name  string
		path  string
		value []byte
	}{
		{"every byte value", "app/blob.bin", allBytes},
		{"empty", "app/empty", []byte{}},
		{"nil", "app/nil", nil},
		{"text", "app/web/db-password", e.value()},
		{"largest allowed", "assets/large", largest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := e.put(t, c, tt.path, tt.value)
			if m.Path != tt.path || m.Version != 1 || m.Created.IsZero() {
				t.Errorf("PutSecret = %+v, want path %q, version 1 and a time", m, tt.path)
			}
			s := e.get(t, c, tt.path, 0)
			if !bytes.Equal(s.Value, tt.value) {
				t.Errorf("GetSecret value = %d bytes %q…, want %d bytes %q…", len(s.Value), head(s.Value), len(tt.value), head(tt.value))
			}
			if s.Path != tt.path || s.Version != 1 {
				t.Errorf("GetSecret meta = %q v%d, want %q v1", s.Path, s.Version, tt.path)
			}
		})
	}
}

func head(b []byte) []byte { return b[:min(len(b), 16)] }

func TestSecretVersions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	c := e.client(e.root)
	const path = "app/db/password"
	values := [][]byte{e.value(), e.value(), e.value()}
	for i, v := range values {
		if m := e.put(t, c, path, v); m.Version != i+1 {
			t.Errorf("put #%d: got version %d, want %d", i+1, m.Version, i+1)
		}
	}
	if got := e.get(t, c, path, 0); got.Version != 3 || !bytes.Equal(got.Value, values[2]) {
		t.Errorf("latest: got v%d %q, want v3 %q", got.Version, got.Value, values[2])
	}
	for i, v := range values {
		if got := e.get(t, c, path, i+1); got.Version != i+1 || !bytes.Equal(got.Value, v) {
			t.Errorf("version %d: got v%d %q, want %q", i+1, got.Version, got.Value, v)
		}
	}
	_, err := c.GetSecret(ctx, path, 4)
	ce := e.wantErr(t, "version 4", err, client.ErrNotFound)
	if want := `no version 4 of secret "app/db/password"`; ce.Message != want {
		t.Errorf("version 4: got message %q, want %q", ce.Message, want)
	}

	h, err := c.History(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, m := range h {
		got = append(got, m.Version)
		if m.Path != path || m.Created.IsZero() {
			t.Errorf("history entry %+v, want path %q and a time", m, path)
		}
	}
	if want := []int{1, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("history versions = %v, want %v", got, want)
	}

	for _, v := range []string{"0", "-1", "abc", "1.5"} {
		status, _ := e.raw(t, http.MethodGet, "/v1/secrets/"+path+"?version="+v, e.root, nil)
		if status != http.StatusBadRequest {
			t.Errorf("version=%s: got status %d, want 400", v, status)
		}
	}
}

func TestSecretMaxVersions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{maxVersions: 2})
	c := e.client(e.root)
	for range 3 {
		e.put(t, c, "app/x", e.value())
	}
	_, err := c.GetSecret(context.Background(), "app/x", 1)
	e.wantErr(t, "pruned version 1", err, client.ErrNotFound)
	h, err := c.History(context.Background(), "app/x")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || h[0].Version != 2 || h[1].Version != 3 {
		t.Errorf("history = %+v, want versions 2 and 3", h)
	}
}

func TestSecretList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	root := e.client(e.root)
	for _, p := range []string{"other/y", "app/web/b", "app/db/x", "app/web/a", "app/webhooks/z"} {
		e.put(t, root, p, e.value())
	}
	web := e.client(e.tokenWith(t, "list:app/web/**"))
	reader := e.client(e.tokenWith(t, "read:app/**"))

	tests := []struct {
		name    string
		c       *client.Client
		prefix  string
		want    []string
		wantErr error
	}{
		{"root everything", root, "", []string{"app/db/x", "app/web/a", "app/web/b", "app/webhooks/z", "other/y"}, nil},
		{"root prefix", root, "app/web", []string{"app/web/a", "app/web/b", "app/webhooks/z"}, nil},
		{"root nothing there", root, "nope/", []string{}, nil},
		{"list token everything", web, "", []string{"app/web/a", "app/web/b"}, nil},
		{"list token its prefix", web, "app/web/", []string{"app/web/a", "app/web/b"}, nil},
		{"list token wider prefix", web, "app/", []string{"app/web/a", "app/web/b"}, nil},
		{"list token other prefix", web, "app/db/", nil, client.ErrPermissionDenied},
		{"list token unrelated prefix", web, "other/", nil, client.ErrPermissionDenied},
		{"read-only token", reader, "app/", nil, client.ErrPermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list, err := tt.c.ListSecrets(ctx, tt.prefix)
			if tt.wantErr != nil {
				ce := e.wantErr(t, "ListSecrets("+tt.prefix+")", err, tt.wantErr)
				if ce.Capability != "list" {
					t.Errorf("got capability %q, want list", ce.Capability)
				}
				return
			}
			if err != nil {
				t.Fatalf("ListSecrets(%q): %v", tt.prefix, err)
			}
			got := []string{}
			for _, m := range list {
				got = append(got, m.Path)
				if m.Version != 1 {
					t.Errorf("%s: version %d, want 1", m.Path, m.Version)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ListSecrets(%q) = %q, want %q", tt.prefix, got, tt.want)
			}
		})
	}
}

func TestSecretHideAndDestroy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	c := e.client(e.root)
	const path = "app/api-key"
	v1, v2, v3 := e.value(), e.value(), e.value()
	e.put(t, c, path, v1)
	e.put(t, c, path, v2)

	if err := c.DeleteSecret(ctx, path, false); err != nil {
		t.Fatalf("hide: %v", err)
	}
	_, err := c.GetSecret(ctx, path, 0)
	if ce := e.wantErr(t, "get after hide", err, client.ErrNotFound); ce.Message != `no secret at "app/api-key"` {
		t.Errorf("get after hide: got message %q", ce.Message)
	}
	_, err = c.GetSecret(ctx, path, 1)
	e.wantErr(t, "get version 1 after hide", err, client.ErrNotFound)
	_, err = c.History(ctx, path)
	e.wantErr(t, "history after hide", err, client.ErrNotFound)
	if l, err := c.ListSecrets(ctx, ""); err != nil || len(l) != 0 {
		t.Errorf("list after hide = %v, %v; want nothing", l, err)
	}
	e.wantErr(t, "hide twice", c.DeleteSecret(ctx, path, false), client.ErrNotFound)

	if m := e.put(t, c, path, v3); m.Version != 3 {
		t.Errorf("put after hide: got version %d, want 3", m.Version)
	}
	if got := e.get(t, c, path, 1); !bytes.Equal(got.Value, v1) {
		t.Errorf("version 1 after put: got %q, want %q", got.Value, v1)
	}

	if err := c.DeleteSecret(ctx, path, true); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	for v := range 4 {
		_, err = c.GetSecret(ctx, path, v)
		e.wantErr(t, "get after destroy", err, client.ErrNotFound)
	}
	e.wantErr(t, "destroy twice", c.DeleteSecret(ctx, path, true), client.ErrNotFound)
	if m := e.put(t, c, path, e.value()); m.Version != 1 {
		t.Errorf("put after destroy: got version %d, want 1", m.Version)
	}

	// Hiding and destroying take delete.
	writer := e.client(e.tokenWith(t, "read,write:app/**"))
	ce := e.wantErr(t, "hide without delete", writer.DeleteSecret(ctx, path, false), client.ErrPermissionDenied)
	if ce.Capability != "delete" || ce.Path != path {
		t.Errorf("got capability %q on %q, want delete on %q", ce.Capability, ce.Path, path)
	}
	e.wantErr(t, "destroy without delete", writer.DeleteSecret(ctx, path, true), client.ErrPermissionDenied)
}

func TestSecretInvalidPath(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	c := e.client(e.root)
	// Secrets that a path cleaned by the HTTP layer would land on.
	victims := map[string][]byte{"b": e.value(), "a/b": e.value(), "x": e.value()}
	for p, v := range victims {
		e.put(t, c, p, v)
	}
	paths := []string{
		"",
		"App/x",
		"a/",
		"a b",
		"a/\x00",
		"ünï/code",
		strings.Repeat("a", 257),
		"a//b",
		"/x",
		"a/../b",
		"a/./b",
		"..",
		"a/..",
	}
	ops := []struct {
		name string
		do   func(path string) error
	}{
		{"put", func(p string) error { _, err := c.PutSecret(ctx, p, e.value()); return err }},
		{"get", func(p string) error { _, err := c.GetSecret(ctx, p, 0); return err }},
		{"get version", func(p string) error { _, err := c.GetSecret(ctx, p, 1); return err }},
		{"history", func(p string) error { _, err := c.History(ctx, p); return err }},
		{"hide", func(p string) error { return c.DeleteSecret(ctx, p, false) }},
		{"destroy", func(p string) error { return c.DeleteSecret(ctx, p, true) }},
	}
	for _, p := range paths {
		for _, op := range ops {
			t.Run(op.name+" "+strconv.Quote(p), func(t *testing.T) {
				ce := e.wantErr(t, op.name, op.do(p), client.ErrInvalid)
				if ce.Status != http.StatusBadRequest {
					t.Errorf("got status %d, want 400", ce.Status)
				}
				if !strings.Contains(ce.Message, strconv.Quote(p)) {
					t.Errorf("got message %q, want it to name the path %q", ce.Message, p)
				}
			})
		}
	}
	// Nothing happened to the secrets the bad paths resemble.
	for p, v := range victims {
		if s := e.get(t, c, p, 0); s.Version != 1 || !bytes.Equal(s.Value, v) {
			t.Errorf("%s: got v%d %q, want v1 %q", p, s.Version, s.Value, v)
		}
	}
}

func TestSecretTooLarge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const limit = 1024
	e := newEnv(t, envOptions{maxValueSize: limit})
	c := e.client(e.root)
	random := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		e.note(b)
		return b
	}
	e.put(t, c, "app/fits", random(limit))
	tests := []struct {
		name string
		size int
		want string
	}{
		{"one byte over", limit + 1, "value of 1025 bytes is over the limit of 1024 bytes"},
		{"body over the limit", 64 << 10, "request body larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.PutSecret(ctx, "app/big", random(tt.size))
			ce := e.wantErr(t, "PutSecret", err, client.ErrTooLarge)
			if ce.Status != http.StatusRequestEntityTooLarge || !strings.Contains(ce.Message, tt.want) {
				t.Errorf("got %d %q, want 413 and %q", ce.Status, ce.Message, tt.want)
			}
		})
	}
	_, err := c.GetSecret(ctx, "app/big", 0)
	e.wantErr(t, "oversized value stored", err, client.ErrNotFound)

	if st, err := c.Status(ctx); err != nil || st.MaxValueSize != limit {
		t.Errorf("status max_value_size = %v, %v; want %d", st.MaxValueSize, err, limit)
	}
}

// TestSecretMalformedBody sends bodies the client never would. Each one
// hides a marker; no error text and no audit line may repeat it.
func TestSecretMalformedBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	const m = "MARKER4711zq"
	e.note([]byte(m))
	tests := []struct {
		name   string
		target string
		body   string
		status int
	}{
		{"not json", "/v1/secrets/app/x", "hello " + m, 400},
		{"broken object", "/v1/secrets/app/x", `{"value": "` + m, 400},
		{"value not base64", "/v1/secrets/app/x", `{"value":"` + m + `!!"}`, 400},
		{"value of wrong type", "/v1/secrets/app/x", `{"value":{"` + m + `":1}}`, 400},
		{"unknown field named by marker", "/v1/secrets/app/x", `{"value":"aGk=","` + m + `":1}`, 400},
		{"unknown lowercase field holding marker", "/v1/secrets/app/x", `{"value":"aGk=","comment":"` + m + `"}`, 400},
		{"unknown field, long lowercase name", "/v1/secrets/app/x", `{"value":"aGk=","` + strings.Repeat("secretvalue", 4) + `":1}`, 400},
		{"trailing garbage", "/v1/secrets/app/x", `{"value":"aGk="} ` + m, 400},
		{"trailing object", "/v1/secrets/app/x", `{"value":"aGk="}{"value":"` + m + `"}`, 400},
		{"trailing brace", "/v1/secrets/app/x", `{"value":"aGk="}}` + m, 400},
		{"trailing bracket", "/v1/secrets/app/x", `{"value":"aGk="}]"` + m + `"`, 400},
		{"array", "/v1/secrets/app/x", `["` + m + `"]`, 400},
		{"string", "/v1/secrets/app/x", `"` + m + `"`, 400},
		{"empty", "/v1/secrets/app/x", ``, 400},
		{"unseal garbage", "/v1/sys/unseal", `{"key":"` + m + `"}`, 400},
		{"unseal trailing data", "/v1/sys/unseal", `{"key":"x"}]` + m, 400},
		{"rotate garbage", "/v1/sys/rotate-master-key", `{"new_key":"` + m + `"}`, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := http.MethodPut
			if !strings.HasPrefix(tt.target, "/v1/secrets/") {
				method = http.MethodPost
			}
			status, body := e.raw(t, method, tt.target, e.root, []byte(tt.body))
			if status != tt.status {
				t.Errorf("got status %d (%s), want %d", status, body, tt.status)
			}
			if !bytes.Contains(body, []byte(`"code":"invalid"`)) {
				t.Errorf("got body %s, want code invalid", body)
			}
			if bytes.Contains(body, []byte(m)) || bytes.Contains(body, []byte("secretvalue")) {
				t.Errorf("the error repeats the body: %s", body)
			}
		})
	}
	_, err := e.client(e.root).GetSecret(context.Background(), "app/x", 0)
	e.wantErr(t, "stored a malformed put", err, client.ErrNotFound)
	if log := e.auditLog(); bytes.Contains(log, []byte(m)) {
		t.Errorf("the audit log repeats the marker:\n%s", log)
	}
}

func TestUnknownEndpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	for _, tt := range []struct{ method, target string }{
		{http.MethodGet, "/v1/nope"},
		{http.MethodPost, "/v1/status"},
		{http.MethodPatch, "/v1/secrets/app/x"},
		{http.MethodGet, "/"},
	} {
		status, body := e.raw(t, tt.method, tt.target, e.root, nil)
		if status != http.StatusBadRequest || !bytes.Contains(body, []byte("no such endpoint")) {
			t.Errorf("%s %s: got %d %s, want 400 no such endpoint", tt.method, tt.target, status, body)
		}
	}
}

package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/privyhq/privy/api"
)

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		status int    // 0: no error
		msg    string // part of the message
	}{
		{"object", `{"value":"aGk="}`, 0, ""},
		{"object and spaces", " \t\r\n{\"value\":\"aGk=\"}\n \t", 0, ""},
		{"null value", `{"value":null}`, 0, ""},
		{"empty", ``, 400, "unexpected end of input"},
		{"cut short", `{"value":"aGk=`, 400, "unexpected end of input"},
		{"syntax", `{"value" "aGk="}`, 400, "syntax error at byte"},
		{"bad base64", `{"value":"!!"}`, 400, "not valid base64"},
		{"wrong type", `{"value":3}`, 400, `field "value" has the wrong type`},
		{"unknown field", `{"value":"aGk=","colour":"red"}`, 400, `unknown field "colour"`},
		{"unknown field, not name-like", `{"value":"aGk=","Hunter2":1}`, 400, "unknown field"},
		{"trailing object", `{"value":"aGk="}{}`, 400, "data after the object"},
		{"trailing brace", `{"value":"aGk="}}`, 400, "data after the object"},
		{"trailing bracket", `{"value":"aGk="}]`, 400, "data after the object"},
		{"too large", `{"value":"` + strings.Repeat("A", 100) + `"}`, 413, "larger than 64 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req api.PutSecretRequest
			err := decodeJSON(strings.NewReader(tt.body), 64, &req)
			if tt.status == 0 {
				if err != nil {
					t.Fatalf("decodeJSON(%q): %v", tt.body, err)
				}
				return
			}
			var ae *apiError
			if !errors.As(err, &ae) {
				t.Fatalf("decodeJSON(%q) = %v, want an *apiError", tt.body, err)
			}
			if ae.status != tt.status || !strings.Contains(ae.body.Message, tt.msg) {
				t.Errorf("decodeJSON(%q) = %d %q, want %d and %q", tt.body, ae.status, ae.body.Message, tt.status, tt.msg)
			}
			if strings.Contains(ae.body.Message, "Hunter2") {
				t.Errorf("the message repeats the body: %q", ae.body.Message)
			}
		})
	}
}

// FuzzDecodeJSON plants a marker in the fuzzed body (where the template
// says %s, or as a trailing string) and checks that decodeJSON never panics,
// never repeats the marker in an error, and accepts only exactly one JSON
// value.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"value":"aGk="}`,
		`{"value":"%s"}`,
		`{"%s":1}`,
		`{"value":"aGk=","comment":"%s"}`,
		`{"value":{"%s":[1,2]}}`,
		`{"value":"aGk="} %s`,
		`{"value":"aGk="}}"%s"`,
		`{"value":"aGk="}]"%s"`,
		`{"rules":["read:**","%s"],"name":"%s","ttl":"1h","uses":2}`,
		`{"key":"%s","passphrase":"%s"}`,
		`{"new_key":"%s"}`,
		`"%s"`,
		`[%s]`,
		`{"value":1e999}`,
		"\xff\xfe{\"%s\"",
		``,
	} {
		f.Add([]byte(s), uint32(4711))
	}
	targets := []func() any{
		func() any { return new(api.PutSecretRequest) },
		func() any { return new(api.CreateTokenRequest) },
		func() any { return new(api.UnsealRequest) },
		func() any { return new(api.RotateRequest) },
	}
	f.Fuzz(func(t *testing.T, tmpl []byte, n uint32) {
		marker := fmt.Sprintf("MARKER%d", n)
		body := bytes.ReplaceAll(tmpl, []byte("%s"), []byte(marker))
		if !bytes.Contains(body, []byte(marker)) {
			body = append(body, `"`+marker+`"`...)
		}
		for _, target := range targets {
			v := target()
			err := decodeJSON(bytes.NewReader(body), 1<<12, v)
			if err == nil {
				if !json.Valid(body) {
					t.Fatalf("decodeJSON accepted %q, which is not one JSON value", body)
				}
				continue
			}
			var ae *apiError
			if !errors.As(err, &ae) {
				t.Fatalf("decodeJSON(%q) = %v (%T), want an *apiError", body, err, err)
			}
			if ae.status != http.StatusBadRequest && ae.status != http.StatusRequestEntityTooLarge {
				t.Errorf("decodeJSON(%q): status %d, want 400 or 413", body, ae.status)
			}
			for _, s := range []string{err.Error(), ae.body.Message, ae.body.Hint} {
				if strings.Contains(s, marker) {
					t.Fatalf("decodeJSON(%q) error %q repeats the marker %s", body, s, marker)
				}
			}
		}
	})
}

func TestCleanPath(t *testing.T) {
	tests := map[string]string{
		"/v1/status":         "/v1/status",
		"/v1/secrets/a/":     "/v1/secrets/a/",
		"/v1/secrets/a//b":   "/v1/secrets/a/b",
		"/v1/secrets/a/../b": "/v1/secrets/b",
		"/v1/secrets/a/./b":  "/v1/secrets/a/b",
		"/v1/secrets/..":     "/v1",
		"/v1/secrets/a/..":   "/v1/secrets",
		"/":                  "/",
		"":                   "/",
	}
	for in, want := range tests {
		if got := cleanPath(in); got != want {
			t.Errorf("cleanPath(%q) = %q, want %q", in, got, want)
		}
	}
}

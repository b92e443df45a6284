package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/privyhq/privy/client"
)

func privateKeyPEM(t *testing.T, key any, passphrase string) []byte {
	t.Helper()
	var (
		block *pem.Block
		err   error
	)
	if passphrase != "" {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(key, "test", []byte(passphrase))
	} else {
		block, err = ssh.MarshalPrivateKey(key, "test")
	}
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block)
}

// TestSSHSign signs through the server with keys of every type it accepts
// and checks the signatures against the public key it reports.
func TestSSHSign(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	tests := []struct {
		name   string
		key    any
		flags  uint32
		format string
	}{
		{"ed25519", edKey, 0, ssh.KeyAlgoED25519},
		{"ecdsa", ecKey, 0, ssh.KeyAlgoECDSA256},
		{"rsa sha1", rsaKey, 0, ssh.KeyAlgoRSA},
		{"rsa sha256", rsaKey, 2, ssh.KeyAlgoRSASHA256},
		{"rsa sha512", rsaKey, 4, ssh.KeyAlgoRSASHA512},
	}
	root := e.client(e.root)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := "git/key-" + strings.ReplaceAll(tt.name, " ", "-")
			pemBytes := privateKeyPEM(t, tt.key, "")
			e.put(t, root, path, pemBytes)
			c := e.client(e.tokenWith(t, "read:git/**"))
			pk, err := c.SSHPublicKey(ctx, path)
			if err != nil {
				t.Fatalf("SSHPublicKey: %v", err)
			}
			pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(pk.PublicKey))
			if err != nil {
				t.Fatalf("public key %q does not parse: %v", pk.PublicKey, err)
			}
			if pk.Fingerprint != ssh.FingerprintSHA256(pub) || pk.Version != 1 || pk.Path != path {
				t.Errorf("public key reply = %+v, want fingerprint %s, version 1, path %s", pk, ssh.FingerprintSHA256(pub), path)
			}
			data := []byte("session-id and userauth request " + tt.name)
			sig, err := c.SSHSign(ctx, path, data, tt.flags)
			if err != nil {
				t.Fatalf("SSHSign: %v", err)
			}
			if sig.Format != tt.format {
				t.Errorf("signature format = %s, want %s", sig.Format, tt.format)
			}
			if err := pub.Verify(data, &ssh.Signature{Format: sig.Format, Blob: sig.Blob, Rest: sig.Rest}); err != nil {
				t.Errorf("signature does not verify: %v", err)
			}
			if err := pub.Verify([]byte("other data"), &ssh.Signature{Format: sig.Format, Blob: sig.Blob, Rest: sig.Rest}); err == nil {
				t.Error("signature verifies for other data")
			}
		})
	}
}

func TestSSHErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	root := e.client(e.root)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	e.put(t, root, "git/locked", privateKeyPEM(t, edKey, "a passphrase"))
	e.put(t, root, "git/not-a-key", e.value())
	e.put(t, root, "git/ok", privateKeyPEM(t, edKey, ""))
	e.put(t, root, "other/ok", privateKeyPEM(t, edKey, ""))
	c := e.client(e.tokenWith(t, "read:git/**"))

	_, err := c.SSHSign(ctx, "git/locked", []byte("x"), 0)
	if ce := e.wantErr(t, "passphrase key", err, client.ErrInvalid); !strings.Contains(ce.Message, "passphrase-protected") {
		t.Errorf("passphrase key: message %q does not say why", ce.Message)
	}
	_, err = c.SSHPublicKey(ctx, "git/not-a-key")
	if ce := e.wantErr(t, "not a key", err, client.ErrInvalid); !strings.Contains(ce.Message, "not an OpenSSH or PEM private key") {
		t.Errorf("not a key: message %q does not say why", ce.Message)
	}
	_, err = c.SSHSign(ctx, "other/ok", []byte("x"), 0)
	e.wantErr(t, "outside the token's rules", err, client.ErrPermissionDenied)
	_, err = c.SSHSign(ctx, "git/missing", []byte("x"), 0)
	e.wantErr(t, "missing key", err, client.ErrNotFound)
	_, err = e.client("").SSHPublicKey(ctx, "git/ok")
	e.wantErr(t, "no token", err, client.ErrUnauthenticated)
	e.checkHygiene()
}

// TestSSHSignAudit checks that every signature is audited with the build
// it was made for, and that the build header cannot smuggle text into the
// log.
func TestSSHSignAudit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	e.put(t, e.client(e.root), "git/ok", privateKeyPEM(t, edKey, ""))
	tok := e.tokenWith(t, "read:git/**")
	c, err := client.New(e.sock, client.WithToken(tok), client.WithBuildID("b-0123abcd"))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := c.SSHSign(ctx, "git/ok", []byte("data"), 0); err != nil {
			t.Fatal(err)
		}
	}
	bad, err := client.New(e.sock, client.WithToken(tok), client.WithBuildID("evil\" line"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.SSHSign(ctx, "git/ok", []byte("data"), 0); err != nil {
		t.Fatal(err)
	}
	signs, tagged := 0, 0
	for _, en := range e.auditEntries() {
		if en.Op != "ssh.sign" {
			continue
		}
		signs++
		if en.Path != "git/ok" || en.Version != 1 || en.Outcome != "ok" {
			t.Errorf("audit line %+v: want path git/ok, version 1, ok", en)
		}
		switch b := en.Extra["build"]; b {
		case "b-0123abcd":
			tagged++
		case "":
		default:
			t.Errorf("audit line names build %q", b)
		}
	}
	if signs != 4 || tagged != 3 {
		t.Errorf("audit has %d ssh.sign lines, %d with the build id; want 4 and 3", signs, tagged)
	}
}

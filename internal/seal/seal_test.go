package seal

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
)

// newTestKey returns a fresh master key.
func newTestKey(t testing.TB) *Key {
	t.Helper()
	raw, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustSeal(t testing.TB, k *Key, path string, version int, plaintext []byte) []byte {
	t.Helper()
	env, err := k.Seal(path, version, plaintext)
	if err != nil {
		t.Fatalf("Seal(%q, %d): %v", path, version, err)
	}
	return env
}

func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	k := newTestKey(t)
	tests := []struct {
		name      string
		plaintext []byte
	}{
		{"empty", []byte{}},
		{"nil", nil},
		{"one byte", []byte{'x'}},
		{"1KiB", bytes.Repeat([]byte("a"), 1<<10)},
		{"1MiB", bytes.Repeat([]byte{0xa5}, 1<<20)},
		{"binary", allBytes()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := mustSeal(t, k, "app/web/db-password", 3, tt.plaintext)
			if got, want := len(env), minSize+len(tt.plaintext); got != want {
				t.Errorf("len(envelope) = %d, want %d", got, want)
			}
			got, err := k.Open("app/web/db-password", 3, env)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tt.plaintext) {
				t.Errorf("Open = %d bytes, want the %d sealed", len(got), len(tt.plaintext))
			}
		})
	}
}

func TestSealIsFresh(t *testing.T) {
	k := newTestKey(t)
	plaintext := []byte("same value")
	seen := map[string]bool{}
	wrapped := map[string]bool{}
	for range 50 {
		env := mustSeal(t, k, "p", 1, plaintext)
		if seen[string(env)] {
			t.Fatal("Seal returned the same envelope twice")
		}
		seen[string(env)] = true
		w := string(env[1+idSize : headerSize])
		if wrapped[w] {
			t.Fatal("Seal returned the same wrapped data key twice")
		}
		wrapped[w] = true
	}
}

func TestOpenRefuses(t *testing.T) {
	k, other := newTestKey(t), newTestKey(t)
	env := mustSeal(t, k, "app/db", 2, []byte("hunter2"))
	tests := []struct {
		name    string
		key     *Key
		path    string
		version int
		want    error
	}{
		{"wrong path", k, "app/db2", 2, ErrCorrupt},
		{"path prefix", k, "app/d", 2, ErrCorrupt},
		{"path with NUL", k, "app/db\x00", 2, ErrCorrupt},
		{"empty path", k, "", 2, ErrCorrupt},
		{"older version", k, "app/db", 1, ErrCorrupt},
		{"newer version", k, "app/db", 3, ErrCorrupt},
		{"reserved path", k, checkPath, checkVersion, ErrCorrupt},
		{"wrong key", other, "app/db", 2, ErrWrongKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.key.Open(tt.path, tt.version, env)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open(%q, %d) = %q, %v; want error %v", tt.path, tt.version, got, err, tt.want)
			}
			if got != nil {
				t.Errorf("Open returned %d bytes along with an error", len(got))
			}
		})
	}
}

func TestOpenBitFlips(t *testing.T) {
	k := newTestKey(t)
	const path, version = "app/tls/key", 7
	plaintext := []byte("-----BEGIN PRIVATE KEY-----")
	env := mustSeal(t, k, path, version, plaintext)
	regions := []struct {
		name       string
		start, end int
		want       error
	}{
		{"format", 0, 1, ErrCorrupt},
		{"key id", 1, 1 + idSize, ErrWrongKey},
		{"wrapped data key", 1 + idSize, headerSize, ErrCorrupt},
		{"value nonce", headerSize, headerSize + nonceSize, ErrCorrupt},
		{"value ciphertext and tag", headerSize + nonceSize, len(env), ErrCorrupt},
	}
	for _, r := range regions {
		t.Run(r.name, func(t *testing.T) {
			for i := r.start; i < r.end; i++ {
				for bit := range 8 {
					bad := bytes.Clone(env)
					bad[i] ^= 1 << bit
					got, err := k.Open(path, version, bad)
					if !errors.Is(err, r.want) {
						t.Fatalf("byte %d bit %d flipped: Open = %d bytes, %v; want %v", i, bit, len(got), err, r.want)
					}
				}
			}
		})
	}
}

func TestOpenTruncatedOrExtended(t *testing.T) {
	k := newTestKey(t)
	env := mustSeal(t, k, "p", 1, []byte("some value"))
	for n := range len(env) {
		if _, err := k.Open("p", 1, env[:n]); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Open of the first %d of %d bytes: error %v, want %v", n, len(env), err, ErrCorrupt)
		}
		if _, err := KeyIDOf(env[:n]); n < minSize && !errors.Is(err, ErrCorrupt) {
			t.Errorf("KeyIDOf of %d bytes: error %v, want %v", n, err, ErrCorrupt)
		}
	}
	if _, err := k.Open("p", 1, append(bytes.Clone(env), 0)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Open with a byte appended: error %v, want %v", err, ErrCorrupt)
	}
}

func TestOpenUnknownFormat(t *testing.T) {
	k := newTestKey(t)
	env := mustSeal(t, k, "p", 1, []byte("v"))
	for _, format := range []byte{0x00, 0x02, 0xff} {
		bad := bytes.Clone(env)
		bad[0] = format
		_, err := k.Open("p", 1, bad)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "format") {
			t.Errorf("format byte %#x: error %v, want %v naming the format", format, err, ErrCorrupt)
		}
	}
}

func TestRewrap(t *testing.T) {
	oldKey, newKey, stranger := newTestKey(t), newTestKey(t), newTestKey(t)
	const path, version = "ci/deploy-token", 4
	plaintext := []byte("s3cr3t")
	env := mustSeal(t, oldKey, path, version, plaintext)

	rewrapped, err := oldKey.Rewrap(newKey, path, version, env)
	if err != nil {
		t.Fatalf("Rewrap: %v", err)
	}
	if !bytes.Equal(rewrapped[headerSize:], env[headerSize:]) {
		t.Error("Rewrap changed the value nonce or ciphertext")
	}
	if got, want := mustKeyID(t, rewrapped), newKey.ID(); got != want {
		t.Errorf("KeyIDOf(rewrapped) = %s, want %s", got, want)
	}
	got, err := newKey.Open(path, version, rewrapped)
	if err != nil || !bytes.Equal(got, plaintext) {
		t.Errorf("new key Open = %d bytes, %v; want the sealed value", len(got), err)
	}
	if _, err := oldKey.Open(path, version, rewrapped); !errors.Is(err, ErrWrongKey) {
		t.Errorf("old key Open of rewrapped: error %v, want %v", err, ErrWrongKey)
	}

	again, err := oldKey.Rewrap(newKey, path, version, rewrapped)
	if err != nil {
		t.Fatalf("Rewrap of an already rewrapped envelope: %v", err)
	}
	if !bytes.Equal(again, rewrapped) {
		t.Error("Rewrap of an already rewrapped envelope changed it")
	}

	damaged := bytes.Clone(env)
	damaged[len(damaged)-1] ^= 1
	moved, err := oldKey.Rewrap(newKey, path, version, damaged)
	if err != nil {
		t.Fatalf("Rewrap of an envelope with a damaged value: %v", err)
	}
	if _, err := newKey.Open(path, version, moved); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Open of a rewrapped damaged value: error %v, want %v", err, ErrCorrupt)
	}

	tests := []struct {
		name     string
		from, to *Key
		path     string
		version  int
		env      []byte
		want     error
	}{
		{"wrong old key", stranger, newKey, path, version, env, ErrWrongKey},
		{"wrong path", oldKey, newKey, "other", version, env, ErrCorrupt},
		{"wrong version", oldKey, newKey, path, version + 1, env, ErrCorrupt},
		{"already new, wrong path", oldKey, newKey, "other", version, rewrapped, ErrCorrupt},
		{"truncated", oldKey, newKey, path, version, env[:minSize-1], ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.from.Rewrap(tt.to, tt.path, tt.version, tt.env); !errors.Is(err, tt.want) {
				t.Errorf("Rewrap: error %v, want %v", err, tt.want)
			}
		})
	}
}

func mustKeyID(t *testing.T, env []byte) string {
	t.Helper()
	id, err := KeyIDOf(env)
	if err != nil {
		t.Fatalf("KeyIDOf: %v", err)
	}
	return id
}

func TestCheckVerify(t *testing.T) {
	k, other := newTestKey(t), newTestKey(t)
	check, err := k.Check()
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if err := k.Verify(check); err != nil {
		t.Errorf("Verify with the same key: %v", err)
	}
	damaged := bytes.Clone(check)
	damaged[len(damaged)-1] ^= 1
	forged := mustSeal(t, k, checkPath, checkVersion, []byte("not the check value"))
	tests := []struct {
		name  string
		key   *Key
		check []byte
		want  error
	}{
		{"other key", other, check, ErrWrongKey},
		{"damaged", k, damaged, ErrCorrupt},
		{"empty", k, nil, ErrCorrupt},
		{"ordinary secret", k, mustSeal(t, k, "app/db", 1, []byte(checkValue)), ErrCorrupt},
		{"wrong value", k, forged, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.key.Verify(tt.check); !errors.Is(err, tt.want) {
				t.Errorf("Verify: error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestNewKey(t *testing.T) {
	for _, n := range []int{0, 1, KeySize - 1, KeySize + 1, 64} {
		if _, err := NewKey(make([]byte, n)); err == nil {
			t.Errorf("NewKey of %d bytes succeeded, want an error", n)
		}
	}

	raw, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	env := mustSeal(t, k, "p", 1, []byte("v"))
	id := k.ID()
	clear(raw) // NewKey must have copied the key
	if got := k.ID(); got != id {
		t.Errorf("ID after clearing the raw bytes = %s, want %s", got, id)
	}
	if _, err := k.Open("p", 1, env); err != nil {
		t.Errorf("Open after clearing the raw bytes: %v", err)
	}
}

func TestID(t *testing.T) {
	raw := bytes.Repeat([]byte{0x42}, KeySize)
	k1, _ := NewKey(raw)
	k2, _ := NewKey(raw)
	k3 := newTestKey(t)
	if got := k1.ID(); len(got) != 16 {
		t.Errorf("ID() = %q, want 16 hex characters", got)
	}
	if _, err := hex.DecodeString(k1.ID()); err != nil {
		t.Errorf("ID() = %q is not hex: %v", k1.ID(), err)
	}
	if k1.ID() != k2.ID() {
		t.Errorf("ID differs for the same key: %s, %s", k1.ID(), k2.ID())
	}
	if k1.ID() == k3.ID() {
		t.Errorf("ID is the same for different keys: %s", k1.ID())
	}
	if strings.Contains(hex.EncodeToString(raw), k1.ID()) {
		t.Errorf("ID %s is a piece of the key", k1.ID())
	}
}

func TestZeroKeyRefused(t *testing.T) {
	var zero Key
	var nilKey *Key
	for _, k := range []*Key{&zero, nilKey} {
		if _, err := k.Seal("p", 1, []byte("v")); err == nil {
			t.Error("Seal with an uninitialized key succeeded")
		}
		if _, err := k.Open("p", 1, make([]byte, minSize)); err == nil {
			t.Error("Open with an uninitialized key succeeded")
		}
	}
	k := newTestKey(t)
	if _, err := k.Rewrap(nil, "p", 1, mustSeal(t, k, "p", 1, nil)); err == nil {
		t.Error("Rewrap to a nil key succeeded")
	}
	if _, err := k.Seal("p", -1, nil); err == nil {
		t.Error("Seal of a negative version succeeded")
	}
}

func TestErrorsHideSecrets(t *testing.T) {
	raw := bytes.Repeat([]byte{0x5a}, KeySize)
	k, _ := NewKey(raw)
	other := newTestKey(t)
	plaintext := []byte("correct-horse-battery-staple")
	env := mustSeal(t, k, "p", 1, plaintext)
	var errs []error
	for _, f := range []func() error{
		func() error { _, err := other.Open("p", 1, env); return err },
		func() error { _, err := k.Open("q", 1, env); return err },
		func() error { _, err := k.Open("p", 1, env[:len(env)-1]); return err },
		func() error { _, err := other.Rewrap(newTestKey(t), "p", 1, env); return err },
		func() error { _, err := k.Rewrap(other, "q", 1, env); return err },
	} {
		errs = append(errs, f())
	}
	for i, err := range errs {
		if err == nil {
			t.Errorf("case %d: got no error, want one", i)
			continue
		}
		msg := err.Error()
		for _, secret := range []string{string(plaintext), hex.EncodeToString(raw), EncodeKey(raw), string(raw)} {
			if strings.Contains(msg, secret) {
				t.Errorf("error %q contains secret material", msg)
			}
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	k := newTestKey(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for v := range 20 {
				env, err := k.Seal("p", v, []byte{byte(i)})
				if err != nil {
					t.Error(err)
					return
				}
				if got, err := k.Open("p", v, env); err != nil || len(got) != 1 || got[0] != byte(i) {
					t.Errorf("Open = %v, %v", got, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// goldenKey and goldenEnvelope pin the envelope format: an envelope stored
// today must open with every later version of this package.
var (
	goldenKey      = bytes.Repeat([]byte{7}, KeySize)
	goldenPath     = "fuzz/secret"
	goldenVersion  = 1
	goldenValue    = "value"
	goldenKeyID    = "92f5b8ba6c83cef4"
	goldenEnvelope = mustHex("01" + "92f5b8ba6c83cef4" +
		"058d94f2c2cff0a2008a0387" + // wrap nonce
		"f46aa14eb0aa494e868b9cc06aca2891f8ff445ffb7131fcc49d840a9b4c7aa9" + // wrapped data key
		"47e418d1dbdcef21a87db36792c09a2f" + // wrap tag
		"a485107d22a8420f7e0e4a92" + // value nonce
		"e03767ce79" + // value ciphertext
		"0243d9c34dc0ca24e245a6a71ddc9a99") // value tag
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestGoldenEnvelope(t *testing.T) {
	k, err := NewKey(goldenKey)
	if err != nil {
		t.Fatal(err)
	}
	if got := k.ID(); got != goldenKeyID {
		t.Errorf("ID() = %s, want %s", got, goldenKeyID)
	}
	if got := mustKeyID(t, goldenEnvelope); got != goldenKeyID {
		t.Errorf("KeyIDOf = %s, want %s", got, goldenKeyID)
	}
	got, err := k.Open(goldenPath, goldenVersion, goldenEnvelope)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if string(got) != goldenValue {
		t.Errorf("Open = %q, want %q", got, goldenValue)
	}
}

func FuzzOpen(f *testing.F) {
	k, err := NewKey(goldenKey)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(goldenEnvelope)
	f.Add(goldenEnvelope[:minSize])
	f.Add(goldenEnvelope[:headerSize])
	f.Add([]byte{})
	f.Add([]byte{formatV1})
	f.Fuzz(func(t *testing.T, env []byte) {
		KeyIDOf(env)
		got, err := k.Open(goldenPath, goldenVersion, env)
		if err == nil && !bytes.Equal(env, goldenEnvelope) {
			t.Fatalf("Open accepted a forged envelope and returned %d bytes", len(got))
		}
		if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongKey) {
			t.Fatalf("Open error %v wraps neither ErrCorrupt nor ErrWrongKey", err)
		}
		// Rewrap authenticates the wrapped data key but, by design, not the
		// value it copies.
		_, err = k.Rewrap(k, goldenPath, goldenVersion, env)
		if err == nil && !bytes.Equal(env[:headerSize], goldenEnvelope[:headerSize]) {
			t.Fatal("Rewrap accepted a forged wrapped data key")
		}
	})
}

func BenchmarkSeal1K(b *testing.B) {
	k := newTestKey(b)
	plaintext := make([]byte, 1<<10)
	b.SetBytes(int64(len(plaintext)))
	for b.Loop() {
		if _, err := k.Seal("bench/secret", 1, plaintext); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen1K(b *testing.B) {
	k := newTestKey(b)
	plaintext := make([]byte, 1<<10)
	env := mustSeal(b, k, "bench/secret", 1, plaintext)
	b.SetBytes(int64(len(plaintext)))
	for b.Loop() {
		if _, err := k.Open("bench/secret", 1, env); err != nil {
			b.Fatal(err)
		}
	}
}

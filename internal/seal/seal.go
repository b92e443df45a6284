// Package seal encrypts secret values with envelope encryption under a
// master key.
//
// Every call to [Key.Seal] draws a fresh random 256-bit data key, encrypts
// the value with it (AES-256-GCM) and wraps the data key with the master key
// (AES-256-GCM). Both layers bind the secret's path and version as
// associated data, so the package promises that:
//
//   - an envelope opens only under the master key that sealed it, and only
//     for the path and version it was sealed for; anything else is an error,
//     never garbage;
//   - a wrong master key is reported as [ErrWrongKey], and a damaged,
//     truncated or moved envelope as [ErrCorrupt];
//   - rotating the master key ([Key.Rewrap]) rewraps only the data key and
//     leaves the value ciphertext byte for byte unchanged;
//   - no error, panic or log line made here contains a secret value or key
//     material.
//
// It does not hide a value's length, and it cannot tell an envelope from an
// older copy of the same path and version (rollback is the store's concern).
// Wrap nonces are random, which keeps the chance of a nonce collision under
// one master key negligible for well over a billion seals; rotate the master
// key long before that.
//
// An envelope is self-describing:
//
//	format (1 byte, 0x01)
//	master key id (8 bytes, see Key.ID)
//	wrapped data key: nonce (12) | ciphertext (32) | tag (16)
//	value: nonce (12) | ciphertext (len(plaintext)) | tag (16)
//
// The master key comes from a key file ([ReadKeyFile]), an environment
// variable ([ParseKey]) or a passphrase ([DeriveKey]).
package seal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// KeySize is the size in bytes of a master key and of a data key.
const KeySize = 32

// Errors returned when an envelope cannot be opened. Callers test them with
// errors.Is.
var (
	// ErrWrongKey means the envelope was sealed under a different master key.
	ErrWrongKey = errors.New("wrong master key")
	// ErrCorrupt means the envelope is malformed, was tampered with, or was
	// sealed for another path or version.
	ErrCorrupt = errors.New("envelope is corrupt or belongs to another path or version")
)

const (
	formatV1    = 0x01
	idSize      = 8
	nonceSize   = 12
	tagSize     = 16
	wrappedSize = nonceSize + KeySize + tagSize
	headerSize  = 1 + idSize + wrappedSize
	minSize     = headerSize + nonceSize + tagSize

	// Domain strings keep the two layers and the key id from ever being
	// valid for one another.
	idDomain    = "privy/seal/v1/key-id"
	wrapDomain  = "privy/seal/v1/wrap"
	valueDomain = "privy/seal/v1/value"

	// checkPath is reserved for the key-check blob; store paths never start
	// with a colon.
	checkPath    = ":privy/keycheck"
	checkVersion = 0
	checkValue   = "privy master key check v1"
)

// Key is a master key. It is safe for concurrent use. The zero Key is not
// usable; create one with NewKey.
type Key struct {
	raw [KeySize]byte
	id  [idSize]byte
	ok  bool
	// wrapper is the AEAD of raw, built once: Go's AES-GCM keeps no state
	// between calls and is safe for concurrent use.
	wrapper cipher.AEAD
}

// NewKey returns a master key holding a copy of raw, which must be KeySize
// bytes long.
func NewKey(raw []byte) (*Key, error) {
	if len(raw) != KeySize {
		return nil, fmt.Errorf("creating master key: got %d bytes, want %d", len(raw), KeySize)
	}
	k := &Key{ok: true}
	copy(k.raw[:], raw)
	h := sha256.New()
	h.Write([]byte(idDomain))
	h.Write([]byte{0})
	h.Write(k.raw[:])
	copy(k.id[:], h.Sum(nil))
	aead, err := newGCM(k.raw[:])
	if err != nil {
		return nil, err
	}
	k.wrapper = aead
	return k, nil
}

// GenerateKey returns KeySize fresh random bytes for NewKey.
func GenerateKey() ([]byte, error) {
	raw := make([]byte, KeySize)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generating master key: %w", err)
	}
	return raw, nil
}

// ID returns the key's fingerprint: 16 hex characters that identify the key
// without revealing anything about it.
func (k *Key) ID() string {
	return hex.EncodeToString(k.id[:])
}

// Seal encrypts plaintext for the secret at path and version and returns
// the envelope.
func (k *Key) Seal(path string, version int, plaintext []byte) ([]byte, error) {
	if err := k.usable(version); err != nil {
		return nil, fmt.Errorf("sealing %q version %d: %w", path, version, err)
	}
	dk := make([]byte, KeySize)
	defer clear(dk)
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(dk); err != nil {
		return nil, fmt.Errorf("sealing %q version %d: generating data key: %w", path, version, err)
	}
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("sealing %q version %d: generating nonce: %w", path, version, err)
	}
	out := make([]byte, 0, minSize+len(plaintext))
	out = append(out, formatV1)
	out = append(out, k.id[:]...)
	out, err := k.wrap(out, dk, path, version)
	if err != nil {
		return nil, fmt.Errorf("sealing %q version %d: %w", path, version, err)
	}
	aead, err := newGCM(dk)
	if err != nil {
		return nil, fmt.Errorf("sealing %q version %d: %w", path, version, err)
	}
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plaintext, associatedData(valueDomain, path, version)), nil
}

// Open decrypts an envelope sealed for the secret at path and version. It
// returns an error wrapping ErrWrongKey if the envelope's key id is not k's,
// and one wrapping ErrCorrupt if it is malformed, tampered with, or was
// sealed for another path or version (including when the wrapped data key
// fails to authenticate under a matching key id).
func (k *Key) Open(path string, version int, envelope []byte) ([]byte, error) {
	if err := k.usable(version); err != nil {
		return nil, fmt.Errorf("opening %q version %d: %w", path, version, err)
	}
	e, err := parseEnvelope(envelope)
	if err != nil {
		return nil, fmt.Errorf("opening %q version %d: %w", path, version, err)
	}
	dk, err := k.unwrap(e, path, version)
	if err != nil {
		return nil, fmt.Errorf("opening %q version %d: %w", path, version, err)
	}
	defer clear(dk)
	aead, err := newGCM(dk)
	if err != nil {
		return nil, fmt.Errorf("opening %q version %d: %w", path, version, err)
	}
	nonce, ct := e.value[:nonceSize], e.value[nonceSize:]
	plaintext, err := aead.Open(nil, nonce, ct, associatedData(valueDomain, path, version))
	if err != nil {
		return nil, fmt.Errorf("opening %q version %d: value failed authentication: %w", path, version, ErrCorrupt)
	}
	return plaintext, nil
}

// Rewrap moves an envelope from master key k to newKey: it unwraps the data
// key with k and wraps it again with newKey, copying the value nonce and
// ciphertext unchanged. If the envelope is already under newKey, Rewrap
// checks that newKey unwraps it and returns envelope itself, so that an
// interrupted rotation can simply be run again. Rewrap authenticates the
// data key but not the value, which it never decrypts: a damaged value
// stays damaged and is reported by Open.
func (k *Key) Rewrap(newKey *Key, path string, version int, envelope []byte) ([]byte, error) {
	if err := k.usable(version); err != nil {
		return nil, fmt.Errorf("rewrapping %q version %d: %w", path, version, err)
	}
	if err := newKey.usable(version); err != nil {
		return nil, fmt.Errorf("rewrapping %q version %d: new key: %w", path, version, err)
	}
	e, err := parseEnvelope(envelope)
	if err != nil {
		return nil, fmt.Errorf("rewrapping %q version %d: %w", path, version, err)
	}
	if bytes.Equal(e.id, newKey.id[:]) {
		dk, err := newKey.unwrap(e, path, version)
		if err != nil {
			return nil, fmt.Errorf("rewrapping %q version %d: %w", path, version, err)
		}
		clear(dk)
		return envelope, nil
	}
	dk, err := k.unwrap(e, path, version)
	if err != nil {
		return nil, fmt.Errorf("rewrapping %q version %d: %w", path, version, err)
	}
	defer clear(dk)
	out := make([]byte, 0, len(envelope))
	out = append(out, formatV1)
	out = append(out, newKey.id[:]...)
	out, err = newKey.wrap(out, dk, path, version)
	if err != nil {
		return nil, fmt.Errorf("rewrapping %q version %d: %w", path, version, err)
	}
	return append(out, e.value...), nil
}

// KeyIDOf returns the ID of the master key an envelope was sealed under.
// It does not authenticate the envelope.
func KeyIDOf(envelope []byte) (string, error) {
	e, err := parseEnvelope(envelope)
	if err != nil {
		return "", fmt.Errorf("reading key id: %w", err)
	}
	return hex.EncodeToString(e.id), nil
}

// Check returns a key-check blob for the server to store beside the
// secrets, so that Verify can tell at unseal time whether a master key is
// the one the store was sealed with.
func (k *Key) Check() ([]byte, error) {
	return k.Seal(checkPath, checkVersion, []byte(checkValue))
}

// Verify reports whether check was made by Check with this master key. It
// returns an error wrapping ErrWrongKey for another key and one wrapping
// ErrCorrupt for a damaged blob.
func (k *Key) Verify(check []byte) error {
	got, err := k.Open(checkPath, checkVersion, check)
	if err != nil {
		return fmt.Errorf("verifying master key: %w", err)
	}
	if string(got) != checkValue {
		return fmt.Errorf("verifying master key: unexpected check value: %w", ErrCorrupt)
	}
	return nil
}

// usable reports whether k can seal or open the given version.
func (k *Key) usable(version int) error {
	if k == nil || !k.ok {
		return errors.New("master key not initialized (use NewKey)")
	}
	if version < 0 {
		return errors.New("negative version")
	}
	return nil
}

// wrap appends nonce | ciphertext | tag of the data key dk to dst.
func (k *Key) wrap(dst, dk []byte, path string, version int) ([]byte, error) {
	aead, err := k.aead()
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("generating nonce: %w", err)
	}
	dst = append(dst, nonce...)
	return aead.Seal(dst, nonce, dk, associatedData(wrapDomain, path, version)), nil
}

// unwrap returns the data key of e; the caller clears it after use. Since
// the key ids match only for the same key (bar a 2^-64 accident), a wrap
// that fails to authenticate under a matching id is corrupt or moved, not
// sealed under a wrong key.
func (k *Key) unwrap(e envelope, path string, version int) ([]byte, error) {
	if !bytes.Equal(e.id, k.id[:]) {
		return nil, fmt.Errorf("sealed under master key %s, not %s: %w", hex.EncodeToString(e.id), k.ID(), ErrWrongKey)
	}
	aead, err := k.aead()
	if err != nil {
		return nil, err
	}
	nonce, ct := e.wrapped[:nonceSize], e.wrapped[nonceSize:]
	dk, err := aead.Open(make([]byte, 0, KeySize), nonce, ct, associatedData(wrapDomain, path, version))
	if err != nil {
		return nil, fmt.Errorf("data key failed authentication: %w", ErrCorrupt)
	}
	return dk, nil
}

// envelope holds the regions of a parsed envelope; they alias its bytes.
type envelope struct {
	id      []byte // master key id
	wrapped []byte // nonce | wrapped data key | tag
	value   []byte // nonce | value ciphertext | tag
}

// parseEnvelope splits b into its regions without authenticating anything.
func parseEnvelope(b []byte) (envelope, error) {
	if len(b) < minSize {
		return envelope{}, fmt.Errorf("envelope is %d bytes, shorter than the minimum %d: %w", len(b), minSize, ErrCorrupt)
	}
	if b[0] != formatV1 {
		return envelope{}, fmt.Errorf("unknown envelope format 0x%02x: %w", b[0], ErrCorrupt)
	}
	return envelope{
		id:      b[1 : 1+idSize],
		wrapped: b[1+idSize : headerSize],
		value:   b[headerSize:],
	}, nil
}

// associatedData encodes domain, path and version unambiguously: the domain
// ends in NUL, the path is length-prefixed and the version has a fixed size.
func associatedData(domain, path string, version int) []byte {
	ad := make([]byte, 0, len(domain)+1+8+len(path)+8)
	ad = append(ad, domain...)
	ad = append(ad, 0)
	ad = binary.BigEndian.AppendUint64(ad, uint64(len(path)))
	ad = append(ad, path...)
	return binary.BigEndian.AppendUint64(ad, uint64(version))
}

// newGCM returns AES-256-GCM under key. A fresh AEAD per operation keeps Key
// free of shared cipher state.
// aead returns the master key's AEAD (built on demand for a Key that did
// not come from NewKey, which the callers above refuse anyway).
func (k *Key) aead() (cipher.AEAD, error) {
	if k.wrapper != nil {
		return k.wrapper, nil
	}
	return newGCM(k.raw[:])
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("creating cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("creating cipher: %w", err)
	}
	return aead, nil
}

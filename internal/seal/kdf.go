package seal

import (
	"crypto/rand"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// Default Argon2id cost. RFC 9106 recommends t=3 with 64 MiB where its 2 GiB
// first choice is too much, and 64 MiB fits the small containers and CI
// runners privy runs in. Two lanes rather than the RFC's four because CPU
// quotas there are often one or two cores, and the lane count is part of the
// result, so it cannot be tuned per machine later. The cost is paid once per
// server start (about a second on a small two-core machine).
const (
	defaultTime      = 3
	defaultMemoryKiB = 64 << 10
	defaultThreads   = 2
	saltSize         = 16
	minSaltSize      = 8

	// Upper bounds keep a damaged or hostile parameter record from making
	// the server allocate or compute without end.
	maxTime      = 100
	maxMemoryKiB = 4 << 20 // 4 GiB
)

// KDFParams are the Argon2id parameters that turn a passphrase into a master
// key. They are not secret and are stored beside the key check so that the
// same passphrase derives the same key again.
type KDFParams struct {
	Salt      []byte `json:"salt"`
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

// NewKDFParams returns the default parameters with a fresh random salt.
func NewKDFParams() (KDFParams, error) {
	salt := make([]byte, saltSize)
	if _, err := rand.Read(salt); err != nil {
		return KDFParams{}, fmt.Errorf("generating salt: %w", err)
	}
	return KDFParams{Salt: salt, Time: defaultTime, MemoryKiB: defaultMemoryKiB, Threads: defaultThreads}, nil
}

// DeriveKey derives a KeySize-byte master key from passphrase with
// Argon2id. It rejects an empty passphrase and missing or out-of-range
// parameters.
func DeriveKey(passphrase []byte, p KDFParams) ([]byte, error) {
	if len(passphrase) == 0 {
		return nil, errors.New("deriving master key: passphrase is empty")
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("deriving master key: %w", err)
	}
	return argon2.IDKey(passphrase, p.Salt, p.Time, p.MemoryKiB, p.Threads, KeySize), nil
}

// validate reports whether p is usable.
func (p KDFParams) validate() error {
	switch {
	case len(p.Salt) < minSaltSize:
		return fmt.Errorf("salt is %d bytes, want at least %d", len(p.Salt), minSaltSize)
	case p.Time == 0 || p.MemoryKiB == 0 || p.Threads == 0:
		return errors.New("time, memory and threads must all be non-zero")
	case p.Time > maxTime:
		return fmt.Errorf("time %d is above the limit of %d", p.Time, maxTime)
	case p.MemoryKiB > maxMemoryKiB:
		return fmt.Errorf("memory %d KiB is above the limit of %d KiB", p.MemoryKiB, maxMemoryKiB)
	}
	return nil
}

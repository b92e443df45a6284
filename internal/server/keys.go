package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/privyhq/privy/internal/policy"
	"github.com/privyhq/privy/internal/seal"
	"github.com/privyhq/privy/internal/store"
	"github.com/privyhq/privy/internal/token"
)

// Records of kind "sys" hold the store's own settings.
const (
	sysKind      = "sys"
	keyCheckKey  = "keycheck" // seal.Key.Check blob of the current master key
	kdfKey       = "kdf"      // seal.KDFParams, when the key comes from a passphrase
	kdfNextKey   = "kdf.next" // the new passphrase's parameters during a rotation
	newKeySuffix = ".new"
)

// ErrNotInitialized means the store has no key-check record: `privy init`
// was never run against it.
var ErrNotInitialized = errors.New("the store is not initialised; run `privy init` first")

// ErrAlreadyInitialized means `privy init` found an initialised store.
var ErrAlreadyInitialized = errors.New("the store is already initialised")

// checkKey verifies k against the store's key-check record.
func checkKey(ctx context.Context, s store.Store, k *seal.Key) error {
	r, err := s.GetRecord(ctx, sysKind, keyCheckKey)
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotInitialized
	}
	if err != nil {
		return fmt.Errorf("reading the key check: %w", err)
	}
	if err := k.Verify(r.Value); err != nil {
		return fmt.Errorf("checking the master key: %w", err)
	}
	return nil
}

// InitOptions say how to initialise a store.
type InitOptions struct {
	// Exactly one key source: RawKey (from PRIVY_MASTER_KEY), Passphrase,
	// or KeyFile (a new key is generated and written there).
	RawKey     []byte
	Passphrase []byte
	KeyFile    string
	Now        time.Time
}

// Init prepares an empty store: it records the master key's check (and the
// passphrase parameters), writes a new key file if asked, and creates the
// root token, which it returns. It refuses a store that is already
// initialised and leaves no key file behind when it fails.
func Init(ctx context.Context, s store.Store, opts InitOptions) (rootToken string, err error) {
	if _, err := s.GetRecord(ctx, sysKind, keyCheckKey); err == nil {
		return "", ErrAlreadyInitialized
	} else if !errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("reading the store: %w", err)
	}
	var raw []byte
	var kdf []byte
	switch {
	case opts.RawKey != nil:
		raw = bytes.Clone(opts.RawKey)
	case opts.Passphrase != nil:
		p, err := seal.NewKDFParams()
		if err != nil {
			return "", err
		}
		if raw, err = seal.DeriveKey(opts.Passphrase, p); err != nil {
			return "", err
		}
		if kdf, err = json.Marshal(p); err != nil {
			return "", err
		}
	case opts.KeyFile != "":
		if raw, err = seal.GenerateKey(); err != nil {
			return "", err
		}
		if err := seal.WriteKeyFile(opts.KeyFile, raw); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return "", fmt.Errorf("key file %s already exists; move it away or pass it to `privy server --key-file`", opts.KeyFile)
			}
			return "", err
		}
		defer func() {
			if err != nil {
				os.Remove(opts.KeyFile)
			}
		}()
	default:
		return "", errors.New("no master key source: give a key file, a passphrase or PRIVY_MASTER_KEY")
	}
	k, err := seal.NewKey(raw)
	clear(raw)
	if err != nil {
		return "", err
	}
	check, err := k.Check()
	if err != nil {
		return "", err
	}
	if kdf != nil {
		if _, err := s.PutRecord(ctx, sysKind, kdfKey, kdf, store.AnyRevision); err != nil {
			return "", fmt.Errorf("storing passphrase parameters: %w", err)
		}
	}
	root, err := policy.ParsePolicy([]string{"admin:**"})
	if err != nil {
		return "", err
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	tok, _, err := token.Create(ctx, s, token.Spec{Name: "root", Policy: root, CreatedBy: "init"}, opts.Now)
	if err != nil {
		return "", err
	}
	// The key check goes last: a store that has it is initialised.
	if _, err := s.PutRecord(ctx, sysKind, keyCheckKey, check, 0); err != nil {
		return "", fmt.Errorf("storing the key check: %w", err)
	}
	return tok, nil
}

// OpenKeyFile loads the master key from a key file and checks it against
// the store. If a rotation was interrupted (PATH.new exists), it is
// finished first, so the key returned is always the one the store uses.
func OpenKeyFile(ctx context.Context, s store.Store, path string) (*seal.Key, error) {
	k, err := loadKey(path)
	if err != nil {
		return nil, err
	}
	next, err := loadKey(path + newKeySuffix)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := checkKey(ctx, s, k); err != nil {
			return nil, err
		}
		return k, nil
	case err != nil:
		return nil, err
	}
	if checkKey(ctx, s, next) != nil {
		if err := checkKey(ctx, s, k); err != nil {
			return nil, err
		}
		if _, err := rewrapAll(ctx, s, k, next); err != nil {
			return nil, fmt.Errorf("finishing an interrupted key rotation: %w", err)
		}
	}
	if err := os.Rename(path+newKeySuffix, path); err != nil {
		return nil, fmt.Errorf("finishing an interrupted key rotation: %w", err)
	}
	return next, nil
}

func loadKey(path string) (*seal.Key, error) {
	raw, err := seal.ReadKeyFile(path)
	if err != nil {
		return nil, err
	}
	defer clear(raw)
	return seal.NewKey(raw)
}

// errNothingRewrapped marks a rewrap that failed as a whole (Store.Rewrap
// is atomic), leaving every envelope under the old key.
var errNothingRewrapped = errors.New("no data key was rewrapped")

// rewrapAll moves every envelope from old to next and then records next's
// key check. It is safe to repeat: envelopes already under next are kept.
func rewrapAll(ctx context.Context, s store.Store, old, next *seal.Key) (int, error) {
	n, err := s.Rewrap(ctx, func(path string, version int, env []byte) ([]byte, error) {
		return old.Rewrap(next, path, version, env)
	})
	if errors.Is(err, store.ErrOutcomeUnknown) {
		// The store may already be under next: KEYFILE.new must stay.
		return 0, fmt.Errorf("rewrapping data keys: %w", err)
	}
	if err != nil {
		return 0, fmt.Errorf("rewrapping data keys: %w: %w", errNothingRewrapped, err)
	}
	check, err := next.Check()
	if err != nil {
		return 0, err
	}
	if _, err := s.PutRecord(ctx, sysKind, keyCheckKey, check, store.AnyRevision); err != nil {
		return 0, fmt.Errorf("storing the new key check: %w", err)
	}
	return n, nil
}

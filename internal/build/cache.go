package build

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// BuildKit leaves secrets out of its cache keys: a step that mounts a
// secret is reused from the cache after the secret was rotated, and runs
// with the old value baked into its result (docker/buildx#551). With
// --bust-cache-on-rotation privy folds a fingerprint of each delivered
// value into the steps that mount it: it declares `ARG PRIVY_SECRET_REV_N`
// just before the first RUN of each stage that mounts secret N, in a copy
// of the Dockerfile it hands to the builder, and passes the fingerprint as
// that build argument. The ARG becomes part of the cache key of that step
// and the later ones of its stage, so a new value reruns exactly them.
//
// The fingerprint is an HMAC-SHA256 of the value under a random key kept
// in the user's privy config directory (mode 0600), so the value cannot be
// guessed from the fingerprint, which `docker history` shows. Builders on
// several machines that share a cache can share the key file.

// cacheArg names the build argument of the i-th secret.
func cacheArg(i int) string { return "PRIVY_SECRET_REV_" + strconv.Itoa(i) }

// cacheKey returns the fingerprint key in file, creating it if need be.
func cacheKey(file string) ([]byte, error) {
	if file == "" {
		return nil, errors.New("no config directory for the build cache key (set XDG_CONFIG_HOME or HOME)")
	}
	b, err := os.ReadFile(file)
	if err == nil {
		k, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(k) != 32 {
			return nil, fmt.Errorf("build cache key %s is not 64 hex digits; remove it to make a new one", file)
		}
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading the build cache key: %w", err)
	}
	k := make([]byte, 32)
	rand.Read(k)
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return nil, fmt.Errorf("creating the build cache key: %w", err)
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return cacheKey(file) // another build made it first
	}
	if err != nil {
		return nil, fmt.Errorf("creating the build cache key: %w", err)
	}
	_, err = f.WriteString(hex.EncodeToString(k) + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(file)
		return nil, fmt.Errorf("writing the build cache key: %w", err)
	}
	return k, nil
}

// fingerprint is the value's HMAC under key, shortened: enough to tell
// values apart, too little to matter if the key ever leaked.
func fingerprint(key, value []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(value)
	return hex.EncodeToString(m.Sum(nil))[:32]
}

// bustCache returns the Dockerfile text with the ARG lines inserted, and
// the build arguments that set them. index maps each delivered secret id
// to its argument number.
func bustCache(dockerfile []byte, runs []Step, index map[string]int) []byte {
	// ARG lines to insert before each line (1-based), per stage.
	before := map[int][]string{}
	declared := map[[2]int]bool{} // (stage, secret) already declared
	for _, r := range runs {
		for _, id := range r.Secrets {
			i, ok := index[id]
			if !ok || declared[[2]int{r.Stage, i}] {
				continue
			}
			declared[[2]int{r.Stage, i}] = true
			before[r.Line] = append(before[r.Line], "ARG "+cacheArg(i))
		}
	}
	lines := strings.SplitAfter(string(dockerfile), "\n")
	var b strings.Builder
	for n, l := range lines {
		for _, arg := range before[n+1] {
			b.WriteString(arg + "\n")
		}
		b.WriteString(l)
	}
	return []byte(b.String())
}

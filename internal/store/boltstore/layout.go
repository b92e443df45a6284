package boltstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The file holds four flat buckets. Nothing is nested per secret, so a read
// is one or two B+tree lookups whatever the number of secrets, and a scan of
// one bucket never touches another's pages:
//
//	secrets   path                            → meta (26 bytes, below)
//	versions  path 0x00 version(uint32 BE)    → created(int64 BE unix ns) envelope
//	records   kind 0x00 key                   → revision(int64 BE) value
//	sys       "format"                        → formatVersion(uint32 BE)
//	          "revision"                      → last record revision(int64 BE)
//
// Paths never contain 0x00, and 0x00 sorts before every path byte, so the
// versions of one path are contiguous, in order, and apart from the versions
// of any path it is a prefix of. Kinds may not contain 0x00 for the same
// reason.
var (
	bucketSecrets  = []byte("secrets")
	bucketVersions = []byte("versions")
	bucketRecords  = []byte("records")
	bucketSys      = []byte("sys")

	keyFormat   = []byte("format")
	keyRevision = []byte("revision")
)

// formatVersion changes when the layout above changes incompatibly.
const formatVersion = 1

// metaLen is the length of an encoded meta.
const metaLen = 26

// meta is what the secrets bucket holds for a path. The kept versions are
// always the contiguous range oldest..latest: Put appends and prunes from the
// old end, and Destroy removes the whole range.
type meta struct {
	hidden  bool
	latest  uint32 // highest version stored; the next Put stores latest+1
	oldest  uint32 // lowest version still kept
	created int64  // unix nanoseconds when latest was stored
	size    uint32 // length of latest's envelope
}

func (m meta) encode() []byte {
	b := make([]byte, metaLen)
	b[0] = formatVersion
	if m.hidden {
		b[1] = 1
	}
	binary.BigEndian.PutUint32(b[2:], m.latest)
	binary.BigEndian.PutUint32(b[6:], m.oldest)
	binary.BigEndian.PutUint64(b[10:], uint64(m.created))
	binary.BigEndian.PutUint32(b[18:], m.size)
	// b[22:26] is reserved and zero.
	return b
}

func decodeMeta(b []byte) (meta, error) {
	if len(b) != metaLen || b[0] != formatVersion {
		return meta{}, fmt.Errorf("decoding secret metadata: got %d bytes of format %d, want %d bytes of format %d", len(b), firstByte(b), metaLen, formatVersion)
	}
	return meta{
		hidden:  b[1]&1 != 0,
		latest:  binary.BigEndian.Uint32(b[2:]),
		oldest:  binary.BigEndian.Uint32(b[6:]),
		created: int64(binary.BigEndian.Uint64(b[10:])),
		size:    binary.BigEndian.Uint32(b[18:]),
	}, nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

// getMeta reads the meta of path; ok is false if nothing is stored there.
func getMeta(tx *bolt.Tx, path string) (m meta, ok bool, err error) {
	b := tx.Bucket(bucketSecrets).Get([]byte(path))
	if b == nil {
		return meta{}, false, nil
	}
	m, err = decodeMeta(b)
	return m, err == nil, err
}

// versionPrefix is the common prefix of every version key of path.
func versionPrefix(path string) []byte {
	return append([]byte(path), 0)
}

func versionKey(path string, version uint32) []byte {
	return binary.BigEndian.AppendUint32(versionPrefix(path), version)
}

// parseVersionKey splits a versions bucket key into path and version.
func parseVersionKey(k []byte) (string, uint32, error) {
	i := bytes.IndexByte(k, 0)
	if i < 0 || len(k)-i-1 != 4 {
		return "", 0, fmt.Errorf("decoding version key %q: want path, 0x00 and 4 bytes", k)
	}
	return string(k[:i]), binary.BigEndian.Uint32(k[i+1:]), nil
}

func encodeVersion(created int64, envelope []byte) []byte {
	b := make([]byte, 8, 8+len(envelope))
	binary.BigEndian.PutUint64(b, uint64(created))
	return append(b, envelope...)
}

// decodeVersion splits a versions bucket value. envelope aliases v.
func decodeVersion(v []byte) (created int64, envelope []byte, err error) {
	if len(v) < 8 {
		return 0, nil, fmt.Errorf("decoding version: got %d bytes, want at least 8", len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), v[8:], nil
}

// toVersion turns a requested version number into a key component; ok is
// false for numbers that cannot have been stored.
func toVersion(n int) (uint32, bool) {
	if n <= 0 || n > math.MaxUint32 {
		return 0, false
	}
	return uint32(n), true
}

func recordPrefix(kind string) []byte {
	return append([]byte(kind), 0)
}

// recordKey builds the records bucket key of kind and key.
func recordKey(kind, key string) ([]byte, error) {
	if strings.IndexByte(kind, 0) >= 0 {
		return nil, fmt.Errorf("record kind %q contains a NUL byte; use a plain name", kind)
	}
	return append(recordPrefix(kind), key...), nil
}

func encodeRecord(rev int64, value []byte) []byte {
	b := make([]byte, 8, 8+len(value))
	binary.BigEndian.PutUint64(b, uint64(rev))
	return append(b, value...)
}

// decodeRecord splits a records bucket value. value aliases v.
func decodeRecord(v []byte) (rev int64, value []byte, err error) {
	if len(v) < 8 {
		return 0, nil, fmt.Errorf("decoding record: got %d bytes, want at least 8", len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), v[8:], nil
}

func unixNano(n int64) time.Time { return time.Unix(0, n) }

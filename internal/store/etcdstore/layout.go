package etcdstore

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Every key lives under the store's prefix P (default "/privy/"):
//
//	P format                          → "1" (formatVersion)
//	P s/ path                         → meta (22 bytes, below)
//	P v/ path 0x00 version(%010d)     → created(int64 BE unix ns) envelope
//	P r/ kind 0x00 key                → value; its etcd ModRevision is the
//	                                    record's Revision
//	P rewrap                          → marker (JSON) of a Rewrap under way
//	P x/ id / path 0x00 version       → staged: ModRevision(int64 BE) of the
//	                                    version key it replaces, then the
//	                                    new version value
//
// Paths never contain 0x00, and 0x00 sorts before every path byte, so the
// versions of one path are contiguous, in order (the version is fixed-width
// decimal), and apart from the versions of any path it is a prefix of.
// Kinds may not contain 0x00 for the same reason. The kept versions of a
// secret are exactly the version keys oldest..latest: Put writes latest and
// deletes the range below oldest in the same transaction, and Destroy
// deletes the meta and every version key together.
const formatVersion = "1"

// keys builds the keys of one store's prefix.
type keys struct {
	prefix string
}

func (k keys) format() string { return k.prefix + "format" }

func (k keys) metaPrefix() string         { return k.prefix + "s/" }
func (k keys) meta(path string) string    { return k.prefix + "s/" + path }
func (k keys) versionsPrefix() string     { return k.prefix + "v/" }
func (k keys) versionsOf(p string) string { return k.prefix + "v/" + p + "\x00" }

func (k keys) version(path string, v uint32) string {
	return k.versionsOf(path) + versionSuffix(v)
}

func versionSuffix(v uint32) string { return fmt.Sprintf("%010d", v) }

// parseVersionKey splits a key below versionsPrefix (or a staging prefix)
// into path and version; rest is the key with that prefix removed.
func parseVersionKey(rest string) (string, uint32, error) {
	i := strings.IndexByte(rest, 0)
	if i < 0 || len(rest)-i-1 != 10 {
		return "", 0, fmt.Errorf("decoding version key %q: want path, 0x00 and 10 digits", rest)
	}
	n, err := strconv.ParseUint(rest[i+1:], 10, 32)
	if err != nil {
		return "", 0, fmt.Errorf("decoding version key %q: %w", rest, err)
	}
	return rest[:i], uint32(n), nil
}

func (k keys) recordsOf(kind string) string   { return k.prefix + "r/" + kind + "\x00" }
func (k keys) record(kind, key string) string { return k.recordsOf(kind) + key }

func (k keys) rewrap() string           { return k.prefix + "rewrap" }
func (k keys) stagingAll() string       { return k.prefix + "x/" }
func (k keys) staging(id string) string { return k.prefix + "x/" + id + "/" }

// metaLen is the length of an encoded meta.
const metaLen = 22

// metaFormat is the first byte of an encoded meta.
const metaFormat = 1

// meta is what the store keeps for a path as a whole.
type meta struct {
	hidden  bool
	latest  uint32 // highest version stored; the next Put stores latest+1
	oldest  uint32 // lowest version still kept
	created int64  // unix nanoseconds when latest was stored
	size    uint32 // length of latest's envelope
}

func (m meta) encode() string {
	b := make([]byte, metaLen)
	b[0] = metaFormat
	if m.hidden {
		b[1] = 1
	}
	binary.BigEndian.PutUint32(b[2:], m.latest)
	binary.BigEndian.PutUint32(b[6:], m.oldest)
	binary.BigEndian.PutUint64(b[10:], uint64(m.created))
	binary.BigEndian.PutUint32(b[18:], m.size)
	return string(b)
}

func decodeMeta(b []byte) (meta, error) {
	if len(b) != metaLen || b[0] != metaFormat {
		return meta{}, fmt.Errorf("decoding secret metadata: got %d bytes, want %d bytes of format %d", len(b), metaLen, metaFormat)
	}
	return meta{
		hidden:  b[1]&1 != 0,
		latest:  binary.BigEndian.Uint32(b[2:]),
		oldest:  binary.BigEndian.Uint32(b[6:]),
		created: int64(binary.BigEndian.Uint64(b[10:])),
		size:    binary.BigEndian.Uint32(b[18:]),
	}, nil
}

func encodeVersion(created int64, envelope []byte) string {
	b := make([]byte, 8, 8+len(envelope))
	binary.BigEndian.PutUint64(b, uint64(created))
	return string(append(b, envelope...))
}

// decodeVersion splits a version value. envelope aliases v.
func decodeVersion(v []byte) (created int64, envelope []byte, err error) {
	if len(v) < 8 {
		return 0, nil, fmt.Errorf("decoding version: got %d bytes, want at least 8", len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), v[8:], nil
}

// encodeStaged prefixes a new version value with the ModRevision of the
// version key it replaces.
func encodeStaged(modRev int64, value string) string {
	return string(binary.BigEndian.AppendUint64(nil, uint64(modRev))) + value
}

func decodeStaged(v []byte) (modRev int64, value []byte, err error) {
	if len(v) < 16 {
		return 0, nil, fmt.Errorf("decoding staged version: got %d bytes, want at least 16", len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), v[8:], nil
}

// marker is the value of the rewrap key. While a Rewrap stages new
// envelopes it is attached to that Rewrap's lease and not committed; the
// commit is the one write that sets Committed.
type marker struct {
	ID        string `json:"id"`
	Committed bool   `json:"committed"`
	Count     int    `json:"count"`
}

func (m marker) encode() string {
	b, _ := json.Marshal(m) // cannot fail for this type
	return string(b)
}

func decodeMarker(b []byte) (marker, error) {
	var m marker
	if err := json.Unmarshal(b, &m); err != nil || m.ID == "" {
		return marker{}, fmt.Errorf("decoding the rewrap marker: got %d bytes that are not one", len(b))
	}
	return m, nil
}

func unixNano(n int64) time.Time { return time.Unix(0, n) }

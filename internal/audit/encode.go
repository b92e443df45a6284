package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// The encoder writes an Entry by hand, byte for byte as encoding/json would
// (the tests and FuzzEncode hold it to that), because it runs once per API
// request. A line is assembled in three parts: the body (request_id through
// extra) is encoded by the calling goroutine, so that work runs in parallel;
// the writer goroutine adds seq and time in front and prev behind, since
// those depend on the order of the chain.

// errTimeRange mirrors the error encoding/json reports for such times: RFC
// 3339 has four-digit years only, so Verify could not read the line back.
var errTimeRange = errors.New("entry time is outside the years 0 to 9999")

// checkTime reports whether t can be written as an RFC 3339 timestamp.
func checkTime(t time.Time) error {
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return errTimeRange
	}
	return nil
}

// appendEntry appends e as one line, without the newline. Tests compare it
// with encoding/json; the log itself uses the three parts below.
func appendEntry(dst []byte, e *Entry) []byte {
	dst = appendHead(dst, e.Seq, e.Time)
	dst = appendBody(dst, e)
	dst = append(dst, `,"prev":`...)
	dst = appendString(dst, e.Prev)
	return append(dst, '}')
}

// appendHead appends the opening of a line up to and including the time.
func appendHead(dst []byte, seq uint64, t time.Time) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"time":"`...)
	dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

// appendBody appends the fields between time and prev, each with its
// leading comma.
func appendBody(dst []byte, e *Entry) []byte {
	if e.RequestID != "" {
		dst = append(dst, `,"request_id":`...)
		dst = appendString(dst, e.RequestID)
	}
	dst = append(dst, `,"actor":`...)
	dst = appendString(dst, e.Actor)
	dst = append(dst, `,"op":`...)
	dst = appendString(dst, e.Op)
	if e.Path != "" {
		dst = append(dst, `,"path":`...)
		dst = appendString(dst, e.Path)
	}
	if e.Version != 0 {
		dst = append(dst, `,"version":`...)
		dst = strconv.AppendInt(dst, int64(e.Version), 10)
	}
	dst = append(dst, `,"outcome":`...)
	dst = appendString(dst, e.Outcome)
	if e.Reason != "" {
		dst = append(dst, `,"reason":`...)
		dst = appendString(dst, e.Reason)
	}
	if len(e.Extra) > 0 {
		dst = appendExtra(dst, e.Extra)
	}
	return dst
}

// appendExtra appends the extra map with its keys sorted, as encoding/json
// does.
func appendExtra(dst []byte, m map[string]string) []byte {
	var arr [8]string
	keys := arr[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, `,"extra":{`...)
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, k)
		dst = append(dst, ':')
		dst = appendString(dst, m[k])
	}
	return append(dst, '}')
}

// appendTail appends the prev field and the closing brace.
func appendTail(dst []byte, prev *[sha256.Size]byte) []byte {
	dst = append(dst, `,"prev":"`...)
	dst = hex.AppendEncode(dst, prev[:])
	return append(dst, `"}`...)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string the way encoding/json.Marshal
// does: HTML-safe, with U+2028 and U+2029 escaped and each byte of invalid
// UTF-8 replaced by U+FFFD.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if safe[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default: // other control bytes, and <, > and &
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case c == '\u2028' || c == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// safe marks the ASCII bytes that appear in a JSON string as they are.
var safe = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = true
	}
	for _, b := range `"\<>&` {
		t[b] = false
	}
	return t
}()

package audit

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// marshalStd is what encoding/json makes of e, with its time in UTC as the
// log writes it.
func marshalStd(t testing.TB, e Entry) string {
	t.Helper()
	e.Time = e.Time.UTC()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	return string(b)
}

func TestAppendEntryMatchesEncodingJSON(t *testing.T) {
	var ctl strings.Builder
	for b := 0; b < 0x20; b++ {
		ctl.WriteByte(byte(b))
	}
	ctl.WriteString("\x7f")
	when := time.Date(2025, 3, 4, 5, 6, 7, 891000000, time.UTC)
	tests := []struct {
		name string
		e    Entry
	}{
		{"minimal", Entry{Seq: 1, Time: when, Actor: "token:3f2a", Op: "secret.get", Outcome: "ok", Prev: GenesisHash}},
		{"zero", Entry{}},
		{"all fields", Entry{Seq: 1<<64 - 1, Time: when, RequestID: "r-1", Actor: "peer:uid=0,pid=42", Op: "secret.put",
			Path: "app/web/db-password", Version: 12, Outcome: "denied", Reason: "policy web-ro does not allow put",
			Extra: map[string]string{"image": "nginx:1.27", "build_id": "b-9", "a": ""}, Prev: GenesisHash}},
		{"negative version", Entry{Version: -3}},
		{"quotes and backslashes", Entry{Actor: `a"b\c\\"`, Reason: `"\"`}},
		{"control bytes", Entry{Reason: ctl.String(), Path: "a\tb\nc\rd\be\ff"}},
		{"html", Entry{Path: "<script>&amp;</script>"}},
		{"line separators", Entry{Reason: "a\u2028b\u2029c\u2027"}},
		{"invalid utf-8", Entry{Reason: "a\xffb\xc3(c\xed\xa0\x80d\xf0\x28\x8c\x28", Path: "\xc3"}},
		{"multibyte", Entry{Actor: "container:çé日本🔑", Extra: map[string]string{"ключ": "значение"}}},
		{"extra escapes keys", Entry{Extra: map[string]string{"k\"1": "v\n", "<k>": "\xff", "": "empty"}}},
		{"empty extra is omitted", Entry{Extra: map[string]string{}}},
		{"many extra keys", Entry{Extra: map[string]string{"j": "1", "i": "2", "h": "3", "g": "4", "f": "5", "e": "6", "d": "7", "c": "8", "b": "9", "a": "10"}}},
		{"zone converted to utc", Entry{Time: time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 5*3600+1800))}},
		{"whole second", Entry{Time: time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC)}},
		{"year 0", Entry{Time: time.Date(0, 1, 1, 0, 0, 0, 1, time.UTC)}},
		{"year 9999", Entry{Time: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)}},
		{"odd prev", Entry{Prev: "not\thex"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(appendEntry(nil, &tt.e))
			if want := marshalStd(t, tt.e); got != want {
				t.Errorf("appendEntry:\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestEntryHasExactlyTheGivenFields(t *testing.T) {
	when := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	tests := []struct {
		name string
		e    Entry
		want []string
	}{
		{"required only", Entry{Seq: 1, Time: when, Actor: "a", Op: "o", Outcome: "ok", Prev: GenesisHash},
			[]string{"actor", "op", "outcome", "prev", "seq", "time"}},
		{"everything", Entry{Seq: 1, Time: when, RequestID: "r", Actor: "a", Op: "o", Path: "p", Version: 1,
			Outcome: "ok", Reason: "r", Extra: map[string]string{"k": "v"}, Prev: GenesisHash},
			[]string{"actor", "extra", "op", "outcome", "path", "prev", "reason", "request_id", "seq", "time", "version"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(appendEntry(nil, &tt.e), &m); err != nil {
				t.Fatal(err)
			}
			if got := slices.Sorted(maps.Keys(m)); !slices.Equal(got, tt.want) {
				t.Errorf("fields: got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFieldOrderIsFixed(t *testing.T) {
	e := Entry{Seq: 7, Time: time.Unix(0, 0), RequestID: "r", Actor: "a", Op: "o", Path: "p", Version: 2,
		Outcome: "ok", Reason: "why", Extra: map[string]string{"k": "v"}, Prev: GenesisHash}
	got := string(appendEntry(nil, &e))
	order := []string{`"seq"`, `"time"`, `"request_id"`, `"actor"`, `"op"`, `"path"`, `"version"`, `"outcome"`, `"reason"`, `"extra"`, `"prev"`}
	last := -1
	for _, key := range order {
		i := strings.Index(got, key)
		if i <= last {
			t.Fatalf("field %s out of order in %s", key, got)
		}
		last = i
	}
}

func FuzzEncode(f *testing.F) {
	f.Add(uint64(1), int64(1741064767891000000), "r-1", "token:3f2a", "secret.get", "app/db", 3, "ok", "", "image", "nginx", GenesisHash)
	f.Add(uint64(0), int64(0), "", "\x00\"\\", "<>&", "\u2028\u2029", -1, "\xff\xfe", "\xed\xa0\x80", "\n", "\t", "")
	f.Fuzz(func(t *testing.T, seq uint64, nsec int64, reqID, actor, op, path string, version int, outcome, reason, key, val, prev string) {
		e := Entry{Seq: seq, Time: time.Unix(0, nsec), RequestID: reqID, Actor: actor, Op: op, Path: path,
			Version: version, Outcome: outcome, Reason: reason, Prev: prev}
		if key != "" || val != "" {
			e.Extra = map[string]string{key: val, key + "2": val}
		}
		line := appendEntry(nil, &e)
		if got, want := string(line), marshalStd(t, e); got != want {
			t.Fatalf("appendEntry:\n got %q\nwant %q", got, want)
		}
		var back Entry
		if err := json.Unmarshal(line, &back); err != nil {
			t.Fatalf("encoding/json cannot read the line back: %v", err)
		}
		if utf8.ValidString(actor) && back.Actor != actor {
			t.Errorf("actor: got %q, want %q", back.Actor, actor)
		}
	})
}

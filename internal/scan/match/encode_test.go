package match

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"testing"
)

func TestFormsList(t *testing.T) {
	forms := Forms([]byte("Tr0ub4dor&3"))
	got := map[string]bool{}
	for _, f := range forms {
		got[f.Encoding+":"+string(f.Bytes)] = true
	}
	for _, want := range []string{
		"raw:Tr0ub4dor&3",
		"base64:VHIwdWI0ZG9yJjM=", // standalone, padded
		"base64:VHIwdWI0ZG9yJj",   // aligned at 0: the last character depends on what follows
		"base64:RyMHViNGRvciYz",   // aligned at 1: the first two depend on what precedes
		"base64:UcjB1YjRkb3ImM",   // aligned at 2
		"hex:547230756234646f722633",
		"HEX:547230756234646F722633",
		"url:Tr0ub4dor%263",
		`json:Tr0ub4dor\u00263`,
	} {
		if !got[want] {
			t.Errorf("Forms: missing %s; got %v", want, got)
		}
	}
	for _, f := range forms {
		if len(f.Bytes) < MinForm {
			t.Errorf("form %s %q: shorter than %d", f.Encoding, f.Bytes, MinForm)
		}
	}
	if f := Forms([]byte("abc")); len(f) != 0 {
		t.Errorf("Forms of a 3-byte value: got %v, want none (all shorter than %d)", f, MinForm)
	}
	seen := map[string]bool{}
	for _, f := range Forms([]byte("plain-value-123")) {
		if seen[string(f.Bytes)] {
			t.Errorf("Forms: duplicate %q", f.Bytes)
		}
		seen[string(f.Bytes)] = true
		if (f.Encoding == "url" || f.Encoding == "json") && string(f.Bytes) == "plain-value-123" {
			t.Errorf("Forms: %s form equal to raw", f.Encoding)
		}
	}
}

// TestFormsFound embeds values in longer blobs, encodes the blobs as they
// would be written in a layer, and checks that a Matcher built from the
// values' forms finds every one.
func TestFormsFound(t *testing.T) {
	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 0))
	values := [][]byte{
		[]byte("Tr0ub4dor&3"),
		[]byte(`p@ss"word\n<x>/?#=`),
		[]byte("pässwörd-ünïcode"),
		[]byte("12345678"),
	}
	for range 20 {
		v := make([]byte, 8+r.IntN(40))
		for i := range v {
			v[i] = byte(r.IntN(256))
		}
		values = append(values, v)
	}
	printable := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(' ' + r.IntN(95))
		}
		return b
	}
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return b
	}
	for vi, v := range values {
		var lits []Literal
		for _, f := range Forms(v) {
			lits = append(lits, Literal{Bytes: f.Bytes, ID: vi})
		}
		m := mustNew(t, lits)
		found := func(enc []byte) bool {
			n := 0
			m.Find(enc, func(Hit) { n++ })
			return n > 0
		}
		check := func(how string, enc []byte) {
			if !found(enc) {
				t.Errorf("seed %d value %d: not found in %s", seed, vi, how)
			}
		}
		for off := range 6 {
			blob := append(append(random(off), v...), random(r.IntN(7))...)
			check(fmt.Sprintf("base64 at offset %d", off), []byte(base64.StdEncoding.EncodeToString(blob)))
			check(fmt.Sprintf("base64url at offset %d", off), []byte(base64.URLEncoding.EncodeToString(blob)))
			check(fmt.Sprintf("raw base64 at offset %d", off), []byte(base64.RawStdEncoding.EncodeToString(blob)))
		}
		check("standalone base64", []byte(base64.StdEncoding.EncodeToString(v)))
		check("standalone base64url", []byte(base64.URLEncoding.EncodeToString(v)))
		blob := append(append(random(1+r.IntN(20)), v...), random(r.IntN(20))...)
		check("raw", blob)
		check("hex", []byte(hex.EncodeToString(blob)))
		check("HEX", bytes.ToUpper([]byte(hex.EncodeToString(blob))))

		// Text encodings: the value inside printable text, so that the
		// encoding of the value does not depend on its neighbours.
		text := append(append(printable(1+r.IntN(20)), v...), printable(r.IntN(20))...)
		js, err := json.Marshal(string(text))
		if err != nil {
			t.Fatal(err)
		}
		check("json string", js)
		var buf bytes.Buffer
		e := json.NewEncoder(&buf)
		e.SetEscapeHTML(false)
		e.Encode(map[string]string{"key": string(text)})
		check("json without HTML escaping", buf.Bytes())
		check("url query", []byte("https://example.com/?a=1&key="+url.QueryEscape(string(text))+"&b=2"))
		check("url path", []byte("https://example.com/"+url.PathEscape(string(text))+"/x"))
	}
}

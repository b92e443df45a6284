package match

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/url"
)

// MinForm is the length below which Forms drops a form: shorter strings
// turn up by chance in every layer.
const MinForm = 8

// Form is one way a secret value may be written down.
type Form struct {
	Encoding string // "raw", "base64", "base64url", "hex", "HEX", "url" or "json"
	Bytes    []byte
}

// Forms returns the distinct forms of value that are at least MinForm
// bytes long, raw first:
//
//   - raw: the value itself;
//   - base64 and base64url: the padded encoding of the value alone, and for
//     each of the three alignments the value can have inside a longer
//     encoded blob, the characters that depend on the value's bytes only;
//   - hex and HEX: lower- and upper-case hexadecimal;
//   - url: url.QueryEscape and url.PathEscape, where they differ from raw;
//   - json: the inside of the JSON string encoding/json writes (with and
//     without its HTML escaping of <, > and &), where it differs from raw.
func Forms(value []byte) []Form {
	var forms []Form
	add := func(enc string, b []byte) {
		if len(b) < MinForm {
			return
		}
		for _, f := range forms {
			if bytes.Equal(f.Bytes, b) {
				return
			}
		}
		forms = append(forms, Form{Encoding: enc, Bytes: b})
	}
	add("raw", bytes.Clone(value))
	for _, e := range []struct {
		name          string
		padded, inner *base64.Encoding
	}{
		{"base64", base64.StdEncoding, base64.RawStdEncoding},
		{"base64url", base64.URLEncoding, base64.RawURLEncoding},
	} {
		add(e.name, []byte(e.padded.EncodeToString(value)))
		for k := range 3 {
			add(e.name, alignedBase64(e.inner, value, k))
		}
	}
	add("hex", []byte(hex.EncodeToString(value)))
	add("HEX", bytes.ToUpper([]byte(hex.EncodeToString(value))))
	for _, esc := range []string{url.QueryEscape(string(value)), url.PathEscape(string(value))} {
		if esc != string(value) {
			add("url", []byte(esc))
		}
	}
	for _, html := range []bool{true, false} {
		if j := jsonInner(value, html); !bytes.Equal(j, value) {
			add("json", j)
		}
	}
	return forms
}

// alignedBase64 returns the base64 characters that depend only on value
// when value starts k bytes into a 3-byte group of a longer blob: the blob
// is modelled as k zero bytes, then value, then unknown bytes.
func alignedBase64(enc *base64.Encoding, value []byte, k int) []byte {
	b := make([]byte, k+len(value))
	copy(b[k:], value)
	s := enc.EncodeToString(b)
	first := (8*k + 5) / 6           // first character with no bit of the k bytes
	last := 8 * (k + len(value)) / 6 // characters before it have no bit after value
	if first >= last {
		return nil
	}
	return []byte(s[first:last])
}

// jsonInner returns value as encoding/json writes it inside a string,
// without the quotes.
func jsonInner(value []byte, html bool) []byte {
	var buf bytes.Buffer
	e := json.NewEncoder(&buf)
	e.SetEscapeHTML(html)
	if err := e.Encode(string(value)); err != nil {
		return nil // a string always encodes
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	return b[1 : len(b)-1]
}

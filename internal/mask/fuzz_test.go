package mask

import (
	"bytes"
	"testing"
)

// FuzzWriter compares the Writer with the reference. In text, a 0 byte
// followed by k stands for form k of the values (modulo their number), so
// that the fuzzer reaches the forms' encodings; each byte of sizes is the
// size of one Write (0 to 31), the last taking the rest.
func FuzzWriter(f *testing.F) {
	f.Add([]byte("hunter2hunter2"), []byte("s3cr"), []byte("pw=\x00\x00 \x00\x01\x00\x01 hunter2hun\x00\x04\n"), []byte{3, 1, 0, 7})
	f.Add([]byte("abababab"), []byte("babababa"), []byte("abababababa\x00\x02bab"), []byte{1, 1, 1, 1, 1})
	f.Add([]byte(`abcdefg\`), []byte("abcdefg%"), []byte(`"abcdefg\\" abcdefg%25 ****`), []byte{})
	f.Add([]byte("\x00\xff\x00\xff\x80\x81\x82\x83"), []byte("xyz"), []byte("\x00\x00\x00\x03\xff"), []byte{2, 30})
	f.Fuzz(func(t *testing.T, v1, v2, text, sizes []byte) {
		if len(v1) > 64 || len(v2) > 64 || len(text) > 512 || len(sizes) > 512 {
			return
		}
		values := [][]byte{v1, v2}
		fs := formsOf(values)
		var in []byte
		for i := 0; i < len(text); i++ {
			if text[i] == 0 && i+1 < len(text) && len(fs) > 0 {
				in = append(in, fs[int(text[i+1])%len(fs)]...)
				i++
				continue
			}
			in = append(in, text[i])
		}
		ns := make([]int, len(sizes))
		for i, s := range sizes {
			ns[i] = int(s % 32)
		}
		out := writeAll(t, values, in, ns)
		if len(fs) == 0 && !bytes.Equal(out, in) {
			t.Fatalf("no forms, but output %q differs from input %q", out, in)
		}
	})
}

package mask

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/privyhq/privy/internal/scan/match"
)

// formsOf returns what New masks for values, by the rule of its doc.
func formsOf(values [][]byte) [][]byte {
	var fs [][]byte
	for _, v := range values {
		switch {
		case len(v) < 4:
		case len(v) < 8:
			fs = append(fs, v)
		default:
			for _, f := range match.Forms(v) {
				fs = append(fs, f.Bytes)
			}
		}
	}
	return fs
}

// occurrences returns every occurrence [start, end) of every form in in,
// overlapping ones included, found the slow way.
func occurrences(in []byte, fs [][]byte) [][2]int {
	var occ [][2]int
	for _, f := range fs {
		for i := 0; i+len(f) <= len(in); i++ {
			if bytes.Equal(in[i:i+len(f)], f) {
				occ = append(occ, [2]int{i, i + len(f)})
			}
		}
	}
	return occ
}

// naiveHold returns the earliest p such that in[p:] is a proper prefix of
// a form, or len(in).
func naiveHold(in []byte, fs [][]byte) int {
	longest := 0
	for _, f := range fs {
		longest = max(longest, len(f))
	}
	for p := max(0, len(in)-longest); p < len(in); p++ {
		for _, f := range fs {
			if len(f) > len(in)-p && bytes.HasPrefix(f, in[p:]) {
				return p
			}
		}
	}
	return len(in)
}

// want returns what the Writer must have written out after in[:n] (all of
// it when n == len(in) and flushed): the bytes covered by occurrences that
// end by n are masked, each maximal run of them becomes one Mask, and the
// output stops at hold, or at the end of the run that crosses it.
func want(in []byte, occ [][2]int, n, hold int) []byte {
	covered := make([]bool, n)
	for _, o := range occ {
		if o[1] <= n {
			for i := o[0]; i < o[1]; i++ {
				covered[i] = true
			}
		}
	}
	var out []byte
	for i := 0; i < hold; {
		if !covered[i] {
			out = append(out, in[i])
			i++
			continue
		}
		out = append(out, Mask...)
		for i < n && covered[i] {
			i++
		}
	}
	return out
}

// reference masks in as a whole: the output the Writer must produce for
// any write pattern.
func reference(in []byte, fs [][]byte) []byte {
	return want(in, occurrences(in, fs), len(in), len(in))
}

// writeAll writes in to a new Writer for values in pieces of the given
// sizes (the last piece takes the rest), checks what is written out after
// every Write and after the Flush, and returns the final output.
func writeAll(t testing.TB, values [][]byte, in []byte, sizes []int) []byte {
	t.Helper()
	var got bytes.Buffer
	m, err := New(&got, values)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	fs := formsOf(values)
	occ := occurrences(in, fs)
	for n, i := 0, 0; n < len(in); i++ {
		k := len(in) - n
		if i < len(sizes) {
			k = min(k, sizes[i])
		}
		if c, err := m.Write(in[n : n+k]); c != k || err != nil {
			t.Fatalf("Write(%d bytes) = %d, %v", k, c, err)
		}
		n += k
		if w := want(in, occ, n, naiveHold(in[:n], fs)); !bytes.Equal(got.Bytes(), w) {
			t.Fatalf("values %q, input %q, sizes %v: after %d bytes\n got %q\nwant %q", values, in, sizes, n, got.Bytes(), w)
		}
	}
	if err := m.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if w := reference(in, fs); !bytes.Equal(got.Bytes(), w) {
		t.Fatalf("values %q, input %q, sizes %v: after Flush\n got %q\nwant %q", values, in, sizes, got.Bytes(), w)
	}
	for _, f := range fs {
		if !bytes.Contains(f, []byte("*")) && bytes.Contains(got.Bytes(), f) {
			t.Fatalf("values %q, input %q, sizes %v: form %q in output %q", values, in, sizes, f, got.Bytes())
		}
	}
	return got.Bytes()
}

// writeSplits runs writeAll in one Write, cut in two at every position,
// and in 1-byte writes.
func writeSplits(t testing.TB, values [][]byte, in []byte) []byte {
	t.Helper()
	out := writeAll(t, values, in, nil)
	for i := range len(in) {
		writeAll(t, values, in, []int{i})
	}
	ones := make([]int, len(in))
	for i := range ones {
		ones[i] = 1
	}
	writeAll(t, values, in, ones)
	return out
}

func TestWriter(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString
	tests := []struct {
		name   string
		values []string
		in     string
		want   string
	}{
		{"no values", nil, "Step 1/2 : FROM alpine\n", "Step 1/2 : FROM alpine\n"},
		{"raw", []string{"hunter2hunter2"}, "password is hunter2hunter2\n", "password is ****\n"},
		{"at start and end", []string{"hunter2hunter2"}, "hunter2hunter2 and hunter2hunter2", "**** and ****"},
		{"adjacent", []string{"hunter2hunter2"}, "x hunter2hunter2hunter2hunter2 y", "x **** y"},
		{"one byte apart", []string{"hunter2hunter2"}, "hunter2hunter2-hunter2hunter2", "****-****"},
		{"overlapping", []string{"abcabcab"}, "-abcabcabcab-", "-****-"},
		{"two values touching", []string{"first-secret", "second-secret"}, "[first-secretsecond-secret]", "[****]"},
		{"two values overlapping", []string{"abcdefgh", "fghijklm"}, "abcdefghijklm", "****"},
		{"value inside its JSON form", []string{`abcdefg\`}, `{"k":"abcdefg\\"}`, `{"k":"****"}`},
		{"value inside its URL form", []string{"abcdefg%"}, "?k=abcdefg%25&x", "?k=****&x"},
		{"base64", []string{"Tr0ub4dor&3"}, "auth: " + b64([]byte("Tr0ub4dor&3")) + "\n", "auth: ****\n"},
		{"base64 inside a blob", []string{"Tr0ub4dor&3"}, b64([]byte("user:Tr0ub4dor&3")), "dXNlcjp****w=="},
		{"hex", []string{"Tr0ub4dor&3"}, "x" + hex.EncodeToString([]byte("Tr0ub4dor&3")) + "x", "x****x"},
		{"HEX", []string{"Tr0ub4dor&3"}, strings.ToUpper(hex.EncodeToString([]byte("Tr0ub4dor&3"))), "****"},
		{"url", []string{"p@ss word/1"}, "/login?pw=" + url.QueryEscape("p@ss word/1"), "/login?pw=****"},
		{"short value ignored", []string{"abc"}, "abc abcabc", "abc abcabc"},
		{"empty value ignored", []string{""}, "abc", "abc"},
		{"4-byte value raw only", []string{"s3cr"}, "s3cr " + b64([]byte("s3cr")) + " " + hex.EncodeToString([]byte("s3cr")), "**** czNjcg== 73336372"},
		{"7-byte value", []string{"s3cr3t!"}, "(s3cr3t!)", "(****)"},
		{"prefix only", []string{"hunter2hunter2"}, "hunter2hunter\n", "hunter2hunter\n"},
		{"prefix then value", []string{"hunter2hunter2"}, "hunter2hunterhunter2hunter2", "hunter2hunter****"},
		{"value overlapping itself", []string{"hunter2hunter2"}, "hunter2hunter2hunter2", "****"},
		{"binary", []string{"\x00\xff\x00\xff\x80\x81\x82\x83"}, "\x00\x00\xff\x00\xff\x80\x81\x82\x83\xff\n", "\x00****\xff\n"},
		{"mask text in input", []string{"hunter2hunter2"}, "****hunter2hunter2****", "************"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var values [][]byte
			for _, v := range tt.values {
				values = append(values, []byte(v))
			}
			if got := writeSplits(t, values, []byte(tt.in)); string(got) != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWriterBinaryPassesThrough(t *testing.T) {
	in := make([]byte, 0, 4*256)
	for i := range 4 * 256 {
		in = append(in, byte(i*7+i/256))
	}
	var got bytes.Buffer
	m, err := New(&got, [][]byte{[]byte("never-in-the-input")})
	if err != nil {
		t.Fatal(err)
	}
	m.Write(in)
	m.Flush()
	if !bytes.Equal(got.Bytes(), in) {
		t.Errorf("binary input changed: got %d bytes, want the %d written", got.Len(), len(in))
	}
}

// TestWriterLarge writes values across the 64 KiB pieces the matcher scans
// a large Write in, and across Write boundaries of large writes.
func TestWriterLarge(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	values := [][]byte{[]byte("Tr0ub4dor&3-long-enough"), []byte("s3cr")}
	in := buildLog(r, 300<<10, values)
	for _, at := range []int{1<<16 - 3, 1<<16 + 1<<15 - 1, 2<<16 - 10, 3<<16 - 20} {
		f := formsOf(values)[r.IntN(len(formsOf(values)))]
		in = slices.Insert(in, at, f...)
	}
	for _, size := range []int{len(in), 65535, 4096, 1000} {
		var sizes []int
		for range len(in)/size + 1 {
			sizes = append(sizes, size)
		}
		out := writeAll(t, values, in, sizes)
		if n := bytes.Count(out, []byte(Mask)); n < 4 {
			t.Errorf("writes of %d: %d masks, want at least 4", size, n)
		}
	}
}

// TestWriterLive checks that output is held back only while it may begin a
// form.
func TestWriterLive(t *testing.T) {
	var got bytes.Buffer
	m, err := New(&got, [][]byte{[]byte("Step 3/5 secret")})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		write, total string
	}{
		{"#1 Step 1/5 done\n", "#1 Step 1/5 done\n"},
		{"Step 3/5 done\n", "#1 Step 1/5 done\nStep 3/5 done\n"},
		{"Step 3/5 se", "#1 Step 1/5 done\nStep 3/5 done\n"},     // may begin the value
		{"cr", "#1 Step 1/5 done\nStep 3/5 done\n"},              // still may
		{"x", "#1 Step 1/5 done\nStep 3/5 done\nStep 3/5 secrx"}, // no longer
		{"S", "#1 Step 1/5 done\nStep 3/5 done\nStep 3/5 secrx"}, // "S" may begin it
		{"tep 3/5 secret", "#1 Step 1/5 done\nStep 3/5 done\nStep 3/5 secrx****"},
	}
	for _, s := range steps {
		m.Write([]byte(s.write))
		if got.String() != s.total {
			t.Fatalf("after writing %q: got %q, want %q", s.write, got.String(), s.total)
		}
	}
}

// TestWriterRandom compares the Writer with the reference on random values,
// random text made of pieces of their forms, and random write sizes.
func TestWriterRandom(t *testing.T) {
	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 0))
	alphabets := []string{"ab", "abc=-", "0123456789abcdef%\\\"<", ""}
	iters := 2000
	if testing.Short() {
		iters = 200
	}
	for it := range iters {
		alpha := alphabets[r.IntN(len(alphabets))]
		char := func() byte {
			if alpha == "" {
				return byte(r.IntN(256))
			}
			return alpha[r.IntN(len(alpha))]
		}
		str := func(n int) []byte {
			b := make([]byte, n)
			for i := range b {
				b[i] = char()
			}
			return b
		}
		var values [][]byte
		for range 1 + r.IntN(3) {
			values = append(values, str(2+r.IntN(30)))
		}
		fs := formsOf(values)
		if len(fs) == 0 {
			fs = append(fs, str(5))
		}
		var in []byte
		for range r.IntN(20) {
			f := fs[r.IntN(len(fs))]
			switch r.IntN(6) {
			case 0:
				in = append(in, str(r.IntN(8))...)
			case 1:
				in = append(in, f...)
			case 2:
				in = append(in, f[:r.IntN(len(f))]...)
			case 3:
				in = append(in, f[r.IntN(len(f)):]...)
			case 4:
				in = append(in, Mask...)
			case 5:
				k := r.IntN(len(f))
				in = append(append(in, f[:k]...), f...)
			}
		}
		var sizes []int
		switch r.IntN(3) {
		case 0:
			for range len(in) {
				sizes = append(sizes, 1)
			}
		default:
			for range r.IntN(10) {
				sizes = append(sizes, r.IntN(12))
			}
		}
		t.Run(fmt.Sprint(it), func(t *testing.T) {
			t.Logf("seed %d", seed)
			writeAll(t, values, in, sizes)
		})
		if t.Failed() {
			break
		}
	}
}

// TestWriterFlush checks Flush in the middle of a value: the part before is
// written out, the rest is masked, and nothing is held back any more.
func TestWriterFlush(t *testing.T) {
	var got bytes.Buffer
	m, err := New(&got, [][]byte{[]byte("hunter2hunter2")})
	if err != nil {
		t.Fatal(err)
	}
	m.Write([]byte("pw=hunter2"))
	if got.String() != "pw=" {
		t.Fatalf("before Flush: got %q, want %q", got.String(), "pw=")
	}
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}
	if got.String() != "pw=hunter2" {
		t.Fatalf("after Flush: got %q, want %q", got.String(), "pw=hunter2")
	}
	m.Write([]byte("hunt"))
	m.Write([]byte("er2 ok hunter2hunter2"))
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if want := "pw=hunter2**** ok ****"; got.String() != want {
		t.Errorf("after Close: got %q, want %q", got.String(), want)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

var errBoom = errors.New("boom")

// failWriter accepts ok bytes, then fails (with short writes when short).
type failWriter struct {
	ok    int
	short bool
	got   bytes.Buffer
}

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) <= w.ok {
		w.ok -= len(p)
		return w.got.Write(p)
	}
	n := w.ok
	w.got.Write(p[:n])
	w.ok = 0
	if w.short {
		return n, nil
	}
	return n, errBoom
}

func TestWriterError(t *testing.T) {
	secret := "hunter2hunter2"
	tests := []struct {
		name   string
		values []string
		short  bool
		want   error
	}{
		{"error", []string{secret}, false, errBoom},
		{"short write", []string{secret}, true, io.ErrShortWrite},
		{"error, no values", nil, false, errBoom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var values [][]byte
			for _, v := range tt.values {
				values = append(values, []byte(v))
			}
			w := &failWriter{ok: 10, short: tt.short}
			m, err := New(w, values)
			if err != nil {
				t.Fatal(err)
			}
			if n, err := m.Write([]byte("line one\n")); n != 9 || err != nil {
				t.Fatalf("first Write = %d, %v; want 9, nil", n, err)
			}
			n, err := m.Write([]byte("the value " + secret + " here\n"))
			if n != 0 || !errors.Is(err, tt.want) {
				t.Fatalf("failing Write = %d, %v; want 0 and %v", n, err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q holds the value", err)
			}
			if _, err2 := m.Write([]byte("more\n")); !errors.Is(err2, tt.want) {
				t.Errorf("Write after the error: %v, want %v", err2, tt.want)
			}
			if err2 := m.Flush(); !errors.Is(err2, tt.want) {
				t.Errorf("Flush after the error: %v, want %v", err2, tt.want)
			}
			if err2 := m.Close(); !errors.Is(err2, tt.want) {
				t.Errorf("Close after the error: %v, want %v", err2, tt.want)
			}
			if strings.Contains(w.got.String(), secret) {
				t.Errorf("underlying writer got the value: %q", w.got.String())
			}
		})
	}
}

func TestWriterFlushError(t *testing.T) {
	w := &failWriter{ok: 0}
	m, err := New(w, [][]byte{[]byte("hunter2hunter2")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Write([]byte("hunter2")); err != nil {
		t.Fatalf("Write of a held prefix: %v", err)
	}
	if err := m.Flush(); !errors.Is(err, errBoom) {
		t.Fatalf("Flush = %v, want %v", err, errBoom)
	}
	if _, err := m.Write([]byte("x")); !errors.Is(err, errBoom) {
		t.Errorf("Write after a failed Flush = %v, want %v", err, errBoom)
	}
}

// TestWriterConcurrent writes whole lines from several goroutines, as a
// builder's stdout and stderr do; run it with -race.
func TestWriterConcurrent(t *testing.T) {
	secret := "s3cr3t-t0k3n-value"
	var got bytes.Buffer
	m, err := New(&got, [][]byte{[]byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	const writers, lines = 4, 200
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(m, "#%d %d token=%s\n", g, i, secret)
			}
		})
	}
	wg.Wait()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	var want []string
	for g := range writers {
		for i := range lines {
			want = append(want, fmt.Sprintf("#%d %d token=****", g, i))
		}
	}
	gotLines := strings.Split(strings.TrimSuffix(got.String(), "\n"), "\n")
	slices.Sort(gotLines)
	slices.Sort(want)
	if !slices.Equal(gotLines, want) {
		t.Errorf("got %d lines, want %d; first %q", len(gotLines), len(want), gotLines[:min(3, len(gotLines))])
	}
}

// buildLog returns about size bytes of build output in the style of
// BuildKit's plain progress, with a value or its base64 in one line of 500.
func buildLog(r *rand.Rand, size int, values [][]byte) []byte {
	pkgs := []string{"golang.org/x/sys", "github.com/spf13/cobra", "go.etcd.io/bbolt", "github.com/moby/buildkit"}
	var b []byte
	for step := 1; len(b) < size; step++ {
		b = fmt.Appendf(b, "#%d [build %d/9] RUN go build -o /out/privy ./cmd/privy\n", step, step%9+1)
		for i := range 40 {
			t := float64(i) * 0.137
			switch r.IntN(500) {
			case 0:
				b = fmt.Appendf(b, "#%d %.3f export TOKEN=%s\n", step, t, values[r.IntN(len(values))])
			case 1:
				b = fmt.Appendf(b, "#%d %.3f Authorization: Basic %s\n", step, t, base64.StdEncoding.EncodeToString(values[r.IntN(len(values))]))
			default:
				switch i % 3 {
				case 0:
					b = fmt.Appendf(b, "#%d %.3f go: downloading %s v0.%d.%d\n", step, t, pkgs[r.IntN(len(pkgs))], r.IntN(60), r.IntN(10))
				case 1:
					b = fmt.Appendf(b, "#%d sha256:%x %.1fMB / %.1fMB %.1fs\n", step, r.Uint64(), float64(r.IntN(100))/10, 12.5, t)
				default:
					b = fmt.Appendf(b, "#%d %.3f compile: internal/scan/match/group.go:%d: building groups of %d literals\n", step, t, r.IntN(400), r.IntN(1000))
				}
			}
		}
		b = fmt.Appendf(b, "#%d DONE %.1fs\n\n", step, float64(r.IntN(300))/10)
	}
	return b
}

// BenchmarkWriter masks 4 MiB of build output with 20 values, written a
// line at a time (as a builder's progress arrives) and in 32 KiB pieces
// (as a pipe delivers it).
func BenchmarkWriter(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	var values [][]byte
	for range 20 {
		v := make([]byte, 16+r.IntN(33))
		for i := range v {
			v[i] = byte('!' + r.IntN(94))
		}
		values = append(values, v)
	}
	log := buildLog(r, 4<<20, values)
	lines := bytes.SplitAfter(log, []byte("\n"))
	var chunks [][]byte
	for p := log; len(p) > 0; p = p[min(len(p), 32<<10):] {
		chunks = append(chunks, p[:min(len(p), 32<<10)])
	}
	for _, bb := range []struct {
		name   string
		pieces [][]byte
	}{{"write=line", lines}, {"write=32KiB", chunks}} {
		b.Run(bb.name, func(b *testing.B) {
			b.SetBytes(int64(len(log)))
			for b.Loop() {
				m, err := New(io.Discard, values)
				if err != nil {
					b.Fatal(err)
				}
				for _, p := range bb.pieces {
					m.Write(p)
				}
				m.Flush()
			}
		})
	}
}

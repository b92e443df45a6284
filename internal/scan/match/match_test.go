package match

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

// naive finds the hits of lits in text with a bytes.Index loop per literal.
func naive(lits []Literal, text []byte) []Hit {
	var hits []Hit
	for _, l := range lits {
		pat, t := l.Bytes, text
		if l.Fold {
			pat, t = asciiLower(pat), asciiLower(text)
		}
		for i := 0; ; {
			j := bytes.Index(t[i:], pat)
			if j < 0 {
				break
			}
			hits = append(hits, Hit{ID: l.ID, End: int64(i + j + len(pat))})
			i += j + 1
		}
	}
	sortHits(hits)
	return hits
}

func asciiLower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = lower[c]
	}
	return out
}

func sortHits(h []Hit) {
	slices.SortFunc(h, func(a, b Hit) int {
		if a.End != b.End {
			return int(a.End - b.End)
		}
		return a.ID - b.ID
	})
}

// streamHits writes text to a new Stream in pieces of the given sizes (the
// rest in one piece) and returns the hits in the order delivered.
func streamHits(t testing.TB, m *Matcher, text []byte, splits []int) []Hit {
	t.Helper()
	var hits []Hit
	s := m.NewStream(func(h Hit) { hits = append(hits, h) })
	for _, n := range splits {
		n = min(n, len(text))
		s.Write(text[:n])
		text = text[n:]
	}
	s.Write(text)
	return hits
}

func mustNew(t testing.TB, lits []Literal) *Matcher {
	t.Helper()
	m, err := New(lits)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func lit(s string, id int) Literal     { return Literal{Bytes: []byte(s), ID: id} }
func foldLit(s string, id int) Literal { return Literal{Bytes: []byte(s), ID: id, Fold: true} }

func TestFind(t *testing.T) {
	long := "0123456789-cdefghijklmnopqrstuvwxyz-long-literal"
	tests := []struct {
		name string
		lits []Literal
		text string
		want []Hit
	}{
		{"none", []Literal{lit("secret", 1)}, "nothing to see here", nil},
		{"one", []Literal{lit("secret", 1)}, "a secret here", []Hit{{1, 8}}},
		{"at both ends", []Literal{lit("abc", 1)}, "abcxabc", []Hit{{1, 3}, {1, 7}}},
		{"overlapping self", []Literal{lit("aa", 1)}, "aaaa", []Hit{{1, 2}, {1, 3}, {1, 4}}},
		{"overlapping period", []Literal{lit("abab", 1)}, "ababab", []Hit{{1, 4}, {1, 6}}},
		{"overlapping others", []Literal{lit("password", 1), lit("word", 2), lit("sword", 3)}, "password",
			[]Hit{{1, 8}, {2, 8}, {3, 8}}},
		{"fold", []Literal{foldLit("PassWord", 7)}, "PASSWORD password pAsSwOrD passw0rd",
			[]Hit{{7, 8}, {7, 17}, {7, 26}}},
		{"fold only ascii", []Literal{foldLit("k_key", 1)}, "\u212a_key K_KEY", []Hit{{1, 13}}},
		{"no fold", []Literal{lit("Secret", 1)}, "secret SECRET Secret", []Hit{{1, 20}}},
		{"fold and exact", []Literal{foldLit("token", 1), lit("TOKEN", 2)}, "Token TOKEN",
			[]Hit{{1, 5}, {1, 11}, {2, 11}}},
		{"binary", []Literal{{Bytes: []byte{0, 0xff, 0, 0xff, 1}, ID: 1}},
			"\x00\x00\xff\x00\xff\x01\xff", []Hit{{1, 6}}},
		{"binary fold", []Literal{{Bytes: []byte{0xff, 'A', 0x00, 'b'}, ID: 1, Fold: true}},
			"\xffa\x00B\xdfa\x00b", []Hit{{1, 4}}},
		{"duplicates", []Literal{lit("duplicate", 1), lit("duplicate", 2), foldLit("DUPLICATE", 3)},
			"duplicate", []Hit{{1, 9}, {2, 9}, {3, 9}}},
		{"one byte", []Literal{lit("x", 1)}, "axbxx", []Hit{{1, 2}, {1, 4}, {1, 5}}},
		{"short and long", []Literal{lit("ab", 1), lit(long, 2)}, "ab" + long + "ab",
			[]Hit{{1, 2}, {2, int64(2 + len(long))}, {1, int64(4 + len(long))}}},
		{"long run", []Literal{lit(strings.Repeat("a", 20), 1)}, strings.Repeat("a", 23),
			[]Hit{{1, 20}, {1, 21}, {1, 22}, {1, 23}}},
		{"shorter than literal", []Literal{lit("secret", 1)}, "secre", nil},
		{"empty text", []Literal{lit("secret", 1)}, "", nil},
		{"no literals", nil, "text", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustNew(t, tt.lits)
			var got []Hit
			m.Find([]byte(tt.text), func(h Hit) { got = append(got, h) })
			if !slices.Equal(got, tt.want) {
				t.Errorf("Find: got %v, want %v", got, tt.want)
			}
			// Every split point, and one byte at a time.
			for i := 0; i <= len(tt.text); i++ {
				if got := streamHits(t, m, []byte(tt.text), []int{i}); !slices.Equal(got, tt.want) {
					t.Errorf("split at %d: got %v, want %v", i, got, tt.want)
				}
			}
			ones := make([]int, len(tt.text))
			for i := range ones {
				ones[i] = 1
			}
			if got := streamHits(t, m, []byte(tt.text), ones); !slices.Equal(got, tt.want) {
				t.Errorf("1-byte writes: got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewEmptyLiteral(t *testing.T) {
	_, err := New([]Literal{lit("ok", 1), {ID: 2}})
	if !errors.Is(err, ErrEmptyLiteral) {
		t.Fatalf("New with an empty literal: got %v, want ErrEmptyLiteral", err)
	}
}

func TestStreamOffsetReset(t *testing.T) {
	m := mustNew(t, []Literal{lit("needle", 1)})
	var got []Hit
	s := m.NewStream(func(h Hit) { got = append(got, h) })
	s.Write([]byte("xxnee"))
	s.Write([]byte("dle"))
	if s.Offset() != 8 {
		t.Errorf("Offset: got %d, want 8", s.Offset())
	}
	s.Reset()
	if s.Offset() != 0 {
		t.Errorf("Offset after Reset: got %d, want 0", s.Offset())
	}
	// The kept "nee" must not join with the new stream.
	s.Write([]byte("dle needle"))
	want := []Hit{{1, 8}, {1, 10}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestRandom compares with the naive reference on random texts with
// planted literals, small alphabets (so literals overlap and repeat) and
// random write splits.
func TestRandom(t *testing.T) {
	trials := 2000
	if testing.Short() {
		trials = 200
	}
	seed := rand.Uint64()
	for trial := range trials {
		r := rand.New(rand.NewPCG(seed, uint64(trial)))
		lits, text := randomCase(r)
		m := mustNew(t, lits)
		want := naive(lits, text)
		var splits []int
		for range r.IntN(6) {
			splits = append(splits, r.IntN(len(text)+1))
		}
		if got := streamHits(t, m, text, splits); !slices.Equal(got, want) {
			t.Fatalf("seed %d trial %d: %d literals, %d bytes, splits %v: got %d hits, want %d\nextra %v\nmissing %v",
				seed, trial, len(lits), len(text), splits, len(got), len(want), extra(got, want), extra(want, got))
		}
	}
}

func head(h []Hit) []Hit { return h[:min(len(h), 20)] }

// extra returns (the first of) the hits of a that b lacks, as multisets.
func extra(a, b []Hit) []Hit {
	n := map[Hit]int{}
	for _, h := range b {
		n[h]++
	}
	var out []Hit
	for _, h := range a {
		if n[h] > 0 {
			n[h]--
		} else {
			out = append(out, h)
		}
	}
	return head(out)
}

func randomCase(r *rand.Rand) ([]Literal, []byte) {
	alphabets := []string{"ab", "abc", "aAbB", "abcdefghijklmnopqrstuvwxyz0123456789", "\x00\xff a"}
	alpha := alphabets[r.IntN(len(alphabets))]
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			if r.IntN(8) == 0 {
				b[i] = byte(r.IntN(256))
			} else {
				b[i] = alpha[r.IntN(len(alpha))]
			}
		}
		return b
	}
	var lits []Literal
	maxLen := []int{4, 12, 40, 100}[r.IntN(4)]
	for i := range 1 + r.IntN(30) {
		lits = append(lits, Literal{Bytes: randBytes(1 + r.IntN(maxLen)), ID: i, Fold: r.IntN(3) == 0})
	}
	text := randBytes(r.IntN(3000))
	for range r.IntN(20) {
		if len(text) == 0 {
			break
		}
		l := lits[r.IntN(len(lits))].Bytes
		at := r.IntN(len(text))
		text = append(text[:at], append(slices.Clone(l), text[at:]...)...)
	}
	return lits, text
}

func FuzzStream(f *testing.F) {
	f.Add([]byte("secret"), []byte("a secret and SECRET"), uint64(1))
	f.Add([]byte("aa\x00aaaa"), []byte("aaaaaaaaaaaaaaaaaaaa"), uint64(7))
	f.Add([]byte("0123456789abcdef\x00xyz"), []byte("--0123456789abcdef--0123456789ABCDEF--"), uint64(42))
	f.Fuzz(func(t *testing.T, litBytes, text []byte, seed uint64) {
		// litBytes is cut into literals at NUL bytes; seed picks folding,
		// duplicates and the write splits.
		r := rand.New(rand.NewPCG(seed, 0))
		var lits []Literal
		for i, b := range bytes.Split(litBytes, []byte{0}) {
			if len(b) == 0 || len(lits) == 64 {
				continue
			}
			lits = append(lits, Literal{Bytes: b, ID: i % 5, Fold: r.IntN(2) == 0})
		}
		m := mustNew(t, lits)
		want := naive(lits, text)
		var splits []int
		for range r.IntN(8) {
			splits = append(splits, r.IntN(len(text)+1))
		}
		if got := streamHits(t, m, text, splits); !slices.Equal(got, want) {
			t.Fatalf("splits %v: extra %v, missing %v", splits, extra(got, want), extra(want, got))
		}
	})
}

// TestRuns checks that long runs of one byte against repetitive literals
// cost time in proportion to the hits, not to the run times the literal.
func TestRuns(t *testing.T) {
	text := bytes.Repeat([]byte{'a'}, 1<<18)
	var lits []Literal
	for i, n := range []int{1, 3, 4, 8, 9, 16, 40, 200, 1000} {
		lits = append(lits, lit(strings.Repeat("a", n), i))
	}
	for i := range 200 { // same prefix, never matching: candidates of one q-gram
		lits = append(lits, lit(strings.Repeat("a", 15)+fmt.Sprint(i), 100+i))
	}
	m := mustNew(t, lits)
	count := map[int]int{}
	m.Find(text, func(h Hit) { count[h.ID]++ })
	for i, n := range []int{1, 3, 4, 8, 9, 16, 40, 200, 1000} {
		if want := len(text) - n + 1; count[i] != want {
			t.Errorf("a×%d: got %d hits, want %d", n, count[i], want)
		}
	}
	if len(count) != 9 {
		t.Errorf("got hits of %d literals, want 9", len(count))
	}
}

// TestConcurrent runs streams of one Matcher in parallel (for -race).
func TestConcurrent(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	lits, text := randomCase(r)
	m := mustNew(t, lits)
	want := naive(lits, text)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			if got := streamHits(t, m, text, []int{i * 7, i * 100}); !slices.Equal(got, want) {
				t.Errorf("goroutine %d: got %d hits, want %d", i, len(got), len(want))
			}
		})
	}
	wg.Wait()
}

// TestRandomLarge is TestRandom with thousands of literals, so that groups
// use Bloom filters and several groups are built.
func TestRandomLarge(t *testing.T) {
	trials := 40
	if testing.Short() {
		trials = 5
	}
	seed := rand.Uint64()
	for trial := range trials {
		r := rand.New(rand.NewPCG(seed, uint64(trial)))
		alpha := []string{"abcdef0123456789", "ab", "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"}[r.IntN(3)]
		randBytes := func(n int) []byte {
			b := make([]byte, n)
			for i := range b {
				b[i] = alpha[r.IntN(len(alpha))]
			}
			return b
		}
		var lits []Literal
		for i := range 500 + r.IntN(2000) {
			n := 8 + r.IntN(60)
			if r.IntN(100) == 0 {
				n = 1 + r.IntN(8)
			}
			lits = append(lits, Literal{Bytes: randBytes(n), ID: i, Fold: r.IntN(10) == 0})
		}
		text := randBytes(1 << 15)
		for range 200 {
			l := lits[r.IntN(len(lits))].Bytes
			at := r.IntN(len(text) - len(l))
			copy(text[at:], l)
		}
		m := mustNew(t, lits)
		want := naive(lits, text)
		splits := []int{r.IntN(len(text)), r.IntN(100), 1, r.IntN(len(text))}
		if got := streamHits(t, m, text, splits); !slices.Equal(got, want) {
			t.Fatalf("seed %d trial %d: %d literals, splits %v: got %d hits, want %d\nextra %v\nmissing %v",
				seed, trial, len(lits), splits, len(got), len(want), extra(got, want), extra(want, got))
		}
	}
}

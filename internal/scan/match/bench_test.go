package match

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// benchKeywords are detector keywords of the kind the scanner registers,
// matched case-insensitively.
var benchKeywords = strings.Fields(`
	password passwd secret token akia asia ghp_ gho_ ghu_ ghs_ ghr_ github_pat_
	glpat- -----begin xoxb- xoxp- xoxa- xapp- sk_live_ rk_live_ pk_live_ npm_
	pypi- auth apikey api_key access_key private_key client_secret bearer
	aiza ya29. eyj0 dckr_pat_ hooks.slack.com authorization credential
	basic_auth passphrase sq0atp- sq0csp- shpat_ shpss_ sg.key dop_v1_ xkeysib-
	glsa_ hf_ sntrys_ pat_ AGE-SECRET-KEY- _authtoken .dockercfg auths
	openssh aws_secret mongodb+srv:// postgres:// mysql:// amqp://`)

var benchData = sync.OnceValue(func() []byte {
	const size = 64 << 20
	r := rand.New(rand.NewPCG(1, 1))
	var src, bin []byte
	root := runtime.GOROOT()
	filepath.WalkDir(filepath.Join(root, "src"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || len(src) >= size/2 {
			return fs.SkipDir
		}
		if strings.HasSuffix(p, ".go") {
			b, _ := os.ReadFile(p)
			src = append(src, b...)
		}
		return nil
	})
	filepath.WalkDir(filepath.Join(root, "pkg", "tool"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || len(bin) >= size/4 {
			return fs.SkipDir
		}
		if d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			bin = append(bin, b...)
		}
		return nil
	})
	// Interleave 1 MiB pieces of text, binaries and random bytes (the
	// rest), as layers mix them.
	data := make([]byte, 0, size)
	for i := 0; len(data) < size; i++ {
		var piece []byte
		switch {
		case i%4 < 2 && len(src) > 0:
			piece, src = src[:min(len(src), 1<<20)], src[min(len(src), 1<<20):]
		case i%4 == 2 && len(bin) > 0:
			piece, bin = bin[:min(len(bin), 1<<20)], bin[min(len(bin), 1<<20):]
		default:
			piece = make([]byte, 1<<20)
			for j := range piece {
				piece[j] = byte(r.Uint32())
			}
		}
		data = append(data, piece[:min(len(piece), size-len(data))]...)
	}
	return data
})

// benchLiterals returns n random printable known values, 16–48 bytes,
// expanded with Forms, and the keywords.
func benchLiterals(n int) []Literal {
	r := rand.New(rand.NewPCG(2, uint64(n)))
	var lits []Literal
	for i := range n {
		v := make([]byte, 16+r.IntN(33))
		for j := range v {
			v[j] = byte('!' + r.IntN(94))
		}
		for _, f := range Forms(v) {
			lits = append(lits, Literal{Bytes: f.Bytes, ID: i})
		}
	}
	for i, k := range benchKeywords {
		lits = append(lits, Literal{Bytes: []byte(k), ID: -1 - i, Fold: true})
	}
	return lits
}

// BenchmarkThroughput scans 64 MiB of mixed data in 256 KiB writes. The
// values=10 and values=1000 results should be close: the cost per byte
// does not depend on the number of secrets.
func BenchmarkThroughput(b *testing.B) {
	data := benchData()
	for _, n := range []int{10, 1000} {
		lits := benchLiterals(n)
		m, err := New(lits)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("values=%d", n), func(b *testing.B) {
			hits := 0
			s := m.NewStream(func(Hit) { hits++ })
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				s.Reset()
				for p := data; len(p) > 0; {
					c := p[:min(len(p), 256<<10)]
					s.Write(c)
					p = p[len(c):]
				}
			}
			b.ReportMetric(float64(hits)/float64(b.N), "hits/op")
			b.ReportMetric(float64(len(lits)), "literals")
		})
	}
}

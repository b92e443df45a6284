package detect_test

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/privyhq/privy/internal/scan/detect"
)

// BenchmarkCheck measures one call of every built-in rule on a window of
// 2·WindowRadius bytes, the scanner's cost per keyword hit.
func BenchmarkCheck(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	random := make([]byte, 2*detect.WindowRadius)
	for i := range random {
		random[i] = byte(rng.UintN(256))
	}
	code := bytes.Repeat([]byte("  token = self.config.get('token') # secret password api_key\n"), 20)[:2*detect.WindowRadius]
	base64 := bytes.Repeat([]byte(b64), 16)
	for _, w := range []struct {
		name string
		data []byte
	}{{"random", random}, {"code", code}, {"base64", base64}} {
		for _, r := range detect.Builtin() {
			b.Run(w.name+"/"+r.ID, func(b *testing.B) {
				b.SetBytes(int64(len(w.data)))
				for b.Loop() {
					r.Check(w.data)
				}
			})
		}
	}
}

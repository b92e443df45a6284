package manifest_test
import ("testing";"strings";"fmt";"time";"github.com/privyhq/privy/internal/manifest")
func TestZZBig(t *testing.T) {
	for _, head := range []string{"run:\n  profiles:\n    web:\n      files:\n", "build:\n  secrets:\n"} {
	var b strings.Builder
	b.WriteString(head)
	for i := 0; b.Len() < 1<<20-100; i++ { fmt.Fprintf(&b, "        d%d/e/f%d: a/b\n", i%100, i) }
	start := time.Now()
	_, err := manifest.Parse("p", []byte(b.String()))
	t.Log(time.Since(start), err)
	}
}

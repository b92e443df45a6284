package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/privyhq/privy/client"
)

const (
	crashWriters     = 32
	crashMaxVersions = 10
	// Every hotEvery-th write of a writer goes to the writer's one "hot"
	// path, so versions pile up (and get pruned) across rounds.
	hotEvery = 4
)

// crashRounds is PRIVY_CRASH_ROUNDS, else 20 when benchmarks were asked for
// (-bench, as in long runs), else 3.
func crashRounds(t *testing.T) int {
	if v := os.Getenv("PRIVY_CRASH_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("PRIVY_CRASH_ROUNDS=%q: want a positive number", v)
		}
		return n
	}
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		return 20
	}
	return 3
}

// ack is a write the server acknowledged.
type ack struct {
	path    string
	version int
	value   string
}

// TestCrashRecovery proves that a write the server acknowledged survives the
// server being killed (SIGKILL, mid-load): after a restart on the same data
// directory every acknowledged (path, version, value) reads back, its audit
// line is in the log, and the audit log's hash chain verifies.
func TestCrashRecovery(t *testing.T) {
	rounds := crashRounds(t)
	s := startServer(t, "--audit-sync", "batch", "--max-versions", strconv.Itoa(crashMaxVersions))
	ctx := context.Background()
	var all []ack
	for round := 1; round <= rounds; round++ {
		acks, failures := writeUntilKilled(t, s, round)
		s.start()
		c := s.client(s.root)
		verifyAcks(t, c, acks)
		verifyAuditHasAcks(t, filepath.Join(s.dataDir, "audit.log"), acks)
		res := runCLI(t, s.env(s.root), nil, "audit", "verify")
		if res.code != 0 || !strings.HasPrefix(res.stdout, "audit log intact") {
			t.Errorf("round %d: privy audit verify after the crash:\n%s", round, res)
		}
		t.Logf("round %d: %d writes acknowledged, %d failed after the kill; all read back; %s",
			round, len(acks), failures, strings.TrimSpace(res.stdout))
		if len(acks) == 0 {
			t.Errorf("round %d: no write was acknowledged in ~1s", round)
		}
		all = append(all, acks...)
		if t.Failed() {
			break
		}
	}
	// Later rounds must not have lost what earlier ones wrote.
	c := s.client(s.root)
	verifyAcks(t, c, all)
	if _, err := c.Status(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d rounds, %d acknowledged writes in all, all readable at the end; %d audit recoveries (partial lines dropped)",
		rounds, len(all), countAuditOp(t, filepath.Join(s.dataDir, "audit.log"), "audit.recover"))
	s.stop(15 * time.Second)
}

// writeUntilKilled runs crashWriters concurrent writers against s, kills
// the server with SIGKILL after about a second, and returns the writes it
// acknowledged and how many failed once it was gone.
func writeUntilKilled(t *testing.T, s *server, round int) (acks []ack, failures int64) {
	t.Helper()
	c := s.client(s.root)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu      sync.Mutex
		killed  atomic.Bool
		failed  atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
	)
	for w := range crashWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hot := fmt.Sprintf("crash/hot/w%02d", w)
			for i := 0; ctx.Err() == nil; i++ {
				path := fmt.Sprintf("crash/r%02d/w%02d/k%06d", round, w, i)
				if i%hotEvery == hotEvery-1 {
					path = hot
				}
				value := fmt.Sprintf("r%d-w%d-i%d-%s", round, w, i, randHex(8))
				m, err := c.PutSecret(ctx, path, []byte(value))
				if err == nil {
					mu.Lock()
					acks = append(acks, ack{path, m.Version, value})
					mu.Unlock()
					continue
				}
				if killed.Load() || ctx.Err() != nil {
					failed.Add(1)
					time.Sleep(time.Millisecond) // the server is gone
					continue
				}
				errOnce.Do(func() { t.Errorf("round %d: put %s before the kill: %v", round, path, err) })
			}
		}()
	}
	time.Sleep(700*time.Millisecond + rand.N(600*time.Millisecond))
	killed.Store(true)
	s.kill()
	cancel()
	wg.Wait()
	return acks, failed.Load()
}

// verifyAcks checks every acknowledged write with 16 concurrent readers.
// For a path written more than once, the acknowledged version must be
// kept unless crashMaxVersions newer ones were written since, and the latest
// version must be at least the highest acknowledged one.
func verifyAcks(t *testing.T, c *client.Client, acks []ack) {
	t.Helper()
	ctx := context.Background()
	latest := map[string]int{} // hot paths only
	for _, a := range acks {
		if strings.HasPrefix(a.path, "crash/hot/") {
			latest[a.path] = 0
		}
	}
	for p := range latest {
		sec, err := c.GetSecret(ctx, p, 0)
		if err != nil {
			t.Fatalf("reading the latest version of %s: %v", p, err)
		}
		latest[p] = sec.Version
	}
	work := make(chan ack)
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := range work {
				if l, hot := latest[a.path]; hot {
					if a.version > l {
						report(t, &bad, "%s: version %d was acknowledged, but the latest after the restart is %d", a.path, a.version, l)
						continue
					}
					if a.version <= l-crashMaxVersions {
						continue // pruned by newer versions, as --max-versions says
					}
				}
				sec, err := c.GetSecret(ctx, a.path, a.version)
				switch {
				case err != nil:
					report(t, &bad, "%s version %d was acknowledged but is lost: %v", a.path, a.version, err)
				case string(sec.Value) != a.value || sec.Version != a.version:
					report(t, &bad, "%s version %d reads back as version %d with another value", a.path, a.version, sec.Version)
				}
			}
		}()
	}
	for _, a := range acks {
		work <- a
	}
	close(work)
	wg.Wait()
	if n := bad.Load(); n > 0 {
		t.Errorf("%d of %d acknowledged writes did not survive the crash", n, len(acks))
	}
}

// report logs the first 10 problems of a check.
func report(t *testing.T, n *atomic.Int64, format string, args ...any) {
	if n.Add(1) <= 10 {
		t.Errorf(format, args...)
	}
}

// auditLine is the part of an audit line these tests look at.
type auditLine struct {
	Op      string `json:"op"`
	Path    string `json:"path"`
	Version int    `json:"version"`
	Outcome string `json:"outcome"`
}

// readAudit parses every complete line of the audit log.
func readAudit(t *testing.T, file string) []auditLine {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i+1] // a line being written is not a line yet
	}
	var out []auditLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var l auditLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("audit log line %d is not JSON: %v", n, err)
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// verifyAuditHasAcks checks that every acknowledged put has its "ok" line:
// the server answers only after the line is written.
func verifyAuditHasAcks(t *testing.T, file string, acks []ack) {
	t.Helper()
	type key struct {
		path    string
		version int
	}
	logged := map[key]bool{}
	for _, l := range readAudit(t, file) {
		if l.Op == "secret.put" && l.Outcome == "ok" {
			logged[key{l.Path, l.Version}] = true
		}
	}
	var missing atomic.Int64
	for _, a := range acks {
		if !logged[key{a.path, a.version}] {
			report(t, &missing, "acknowledged put of %s version %d has no audit line", a.path, a.version)
		}
	}
	if n := missing.Load(); n > 0 {
		t.Errorf("%d of %d acknowledged puts are missing from the audit log", n, len(acks))
	}
}

func countAuditOp(t *testing.T, file, op string) int {
	n := 0
	for _, l := range readAudit(t, file) {
		if l.Op == op {
			n++
		}
	}
	return n
}

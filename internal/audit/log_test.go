package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testEntry is a typical entry; i makes its request id unique.
func testEntry(i int) Entry {
	return Entry{
		RequestID: fmt.Sprintf("req-%d", i),
		Actor:     "token:3f2a9c",
		Op:        "secret.get",
		Path:      "app/web/db-password",
		Version:   3,
		Outcome:   OutcomeOK,
	}
}

func openTest(t *testing.T, path string, opts ...Option) *Log {
	t.Helper()
	l, err := Open(path, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func mustWrite(t *testing.T, l *Log, e Entry) {
	t.Helper()
	if err := l.Write(context.Background(), e); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

// readLines returns the file's lines without their newlines.
func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) == 0 {
		return nil
	}
	return bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
}

func parseLine(t *testing.T, line []byte) Entry {
	t.Helper()
	var e Entry
	if err := json.Unmarshal(line, &e); err != nil {
		t.Fatalf("parsing %s: %v", line, err)
	}
	return e
}

func hashOf(line []byte) string {
	sum := sha256.Sum256(line)
	return hex.EncodeToString(sum[:])
}

func verifyFile(t *testing.T, path string) Summary {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sum, err := Verify(f)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return sum
}

func TestConcurrentWrites(t *testing.T) {
	const writers, total = 64, 10000
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, path)

	var next atomic.Int64
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > total {
					return
				}
				if err := l.Write(context.Background(), testEntry(i)); err != nil {
					t.Errorf("Write %d: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	seq, head := l.Head()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	sum := verifyFile(t, path)
	if sum.Lines != total || sum.LastSeq != total || seq != total {
		t.Errorf("got %d lines, last seq %d, head seq %d; want %d", sum.Lines, sum.LastSeq, seq, total)
	}
	if sum.Head != head {
		t.Errorf("Verify head %s, Log head %s", sum.Head, head)
	}
	seen := make(map[string]bool)
	for i, line := range readLines(t, path) {
		e := parseLine(t, line)
		if e.Seq != uint64(i+1) {
			t.Fatalf("line %d has seq %d", i+1, e.Seq)
		}
		if seen[e.RequestID] {
			t.Fatalf("request %s written twice", e.RequestID)
		}
		seen[e.RequestID] = true
	}
	if len(seen) != total {
		t.Errorf("got %d distinct requests, want %d", len(seen), total)
	}
}

func TestWriteFillsSeqTimeAndPrev(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	now := time.Date(2025, 6, 7, 8, 9, 10, 123456789, time.FixedZone("CEST", 2*3600))
	l := openTest(t, path, WithClock(func() time.Time { return now }))

	given := time.Date(2024, 1, 2, 3, 4, 5, 6, time.FixedZone("EST", -5*3600))
	e := testEntry(1)
	e.Seq, e.Prev = 99, "forged" // the log ignores these
	mustWrite(t, l, e)
	e = testEntry(2)
	e.Time = given
	mustWrite(t, l, e)
	l.Close()

	lines := readLines(t, path)
	tests := []struct {
		got, want any
		what      string
	}{
		{parseLine(t, lines[0]).Seq, uint64(1), "seq of line 1"},
		{parseLine(t, lines[0]).Prev, GenesisHash, "prev of line 1"},
		{parseLine(t, lines[0]).Time, now.UTC(), "time of line 1 (from the clock)"},
		{parseLine(t, lines[1]).Seq, uint64(2), "seq of line 2"},
		{parseLine(t, lines[1]).Prev, hashOf(lines[0]), "prev of line 2"},
		{parseLine(t, lines[1]).Time, given.UTC(), "time of line 2 (given)"},
		{bytes.Contains(lines[0], []byte(`"time":"2025-06-07T06:09:10.123456789Z"`)), true, "time written in UTC"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.what, tt.got, tt.want)
		}
	}
}

func TestWriteRejectsTimeOutOfRange(t *testing.T) {
	l := openTest(t, filepath.Join(t.TempDir(), "audit.log"))
	e := testEntry(1)
	e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := l.Write(context.Background(), e); err == nil {
		t.Fatal("Write with year 10000: got nil error")
	}
	mustWrite(t, l, testEntry(2)) // the log is still usable
}

func TestWriteAfterClose(t *testing.T) {
	l := openTest(t, filepath.Join(t.TempDir(), "audit.log"))
	mustWrite(t, l, testEntry(1))
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Write(context.Background(), testEntry(2)); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: got %v, want ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: got %v, want nil", err)
	}
}

func TestWriteWithDoneContext(t *testing.T) {
	l := openTest(t, filepath.Join(t.TempDir(), "audit.log"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Write(ctx, testEntry(1)); !errors.Is(err, context.Canceled) {
		t.Errorf("Write: got %v, want context.Canceled", err)
	}
	if seq, _ := l.Head(); seq != 0 {
		t.Errorf("head seq: got %d, want 0", seq)
	}
}

// faultyFile makes writes or syncs fail on demand.
type faultyFile struct {
	file
	failWrite, failSync atomic.Bool
}

var errInjected = errors.New("injected I/O error")

func (f *faultyFile) Write(p []byte) (int, error) {
	if f.failWrite.Load() {
		n, _ := f.file.Write(p[:len(p)/2]) // leave a partial line, as a full disk might
		return n, errInjected
	}
	return f.file.Write(p)
}

func (f *faultyFile) Sync() error {
	if f.failSync.Load() {
		return errInjected
	}
	return f.file.Sync()
}

func TestWriteFailureIsSticky(t *testing.T) {
	tests := []struct {
		name string
		fail func(*faultyFile)
	}{
		{"write fails", func(f *faultyFile) { f.failWrite.Store(true) }},
		{"fsync fails", func(f *faultyFile) { f.failSync.Store(true) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			var ff *faultyFile
			l := openTest(t, path, withFile(func(f file) file {
				ff = &faultyFile{file: f}
				return ff
			}))
			mustWrite(t, l, testEntry(1))
			tt.fail(ff)

			var wg sync.WaitGroup
			errs := make([]error, 8)
			for i := range errs {
				wg.Go(func() { errs[i] = l.Write(context.Background(), testEntry(2+i)) })
			}
			wg.Wait()
			for i, err := range errs {
				if !errors.Is(err, ErrFailed) || !errors.Is(err, errInjected) ||
					!strings.HasPrefix(err.Error(), "writing audit log: ") {
					t.Errorf("Write %d during failure: got %v, want ErrFailed wrapping the I/O error", i, err)
				}
			}

			ff.failWrite.Store(false)
			ff.failSync.Store(false)
			if err := l.Write(context.Background(), testEntry(100)); !errors.Is(err, ErrFailed) {
				t.Errorf("Write after failure: got %v, want ErrFailed", err)
			}
			if seq, _ := l.Head(); seq != 1 {
				t.Errorf("head seq: got %d, want 1", seq)
			}
			if err := l.Close(); !errors.Is(err, ErrFailed) {
				t.Errorf("Close: got %v, want ErrFailed", err)
			}

			// Reopening drops any partial line and the chain goes on.
			l2 := openTest(t, path)
			mustWrite(t, l2, testEntry(200))
			l2.Close()
			verifyFile(t, path)
		})
	}
}

func TestWriteFailsWhenFileIsClosedUnderneath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, path)
	mustWrite(t, l, testEntry(1))
	l.f.Close() // as if the descriptor went bad
	if err := l.Write(context.Background(), testEntry(2)); !errors.Is(err, ErrFailed) {
		t.Fatalf("Write: got %v, want ErrFailed", err)
	}
	if err := l.Write(context.Background(), testEntry(3)); !errors.Is(err, ErrFailed) {
		t.Errorf("later Write: got %v, want ErrFailed", err)
	}
}

func TestReopenContinuesChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, path)
	for i := range 3 {
		mustWrite(t, l, testEntry(i))
	}
	seq, head := l.Head()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openTest(t, path)
	if gotSeq, gotHead := l.Head(); gotSeq != seq || gotHead != head {
		t.Fatalf("Head after reopen: got (%d, %s), want (%d, %s)", gotSeq, gotHead, seq, head)
	}
	mustWrite(t, l, testEntry(3))
	mustWrite(t, l, testEntry(4))
	l.Close()

	lines := readLines(t, path)
	if sum := verifyFile(t, path); sum.Lines != 5 {
		t.Errorf("lines: got %d, want 5", sum.Lines)
	}
	if got := parseLine(t, lines[3]); got.Seq != 4 || got.Prev != head {
		t.Errorf("line 4: got seq %d prev %s, want seq 4 prev %s", got.Seq, got.Prev, head)
	}
}

func TestOpenLocksFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, path)
	if l2, err := Open(path); !errors.Is(err, ErrLocked) {
		if l2 != nil {
			l2.Close()
		}
		t.Fatalf("second Open: got %v, want ErrLocked", err)
	}
	l.Close()
	openTest(t, path) // free again
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "audit")
	path := filepath.Join(dir, "audit.log")
	openTest(t, path)
	for _, tt := range []struct {
		path string
		want os.FileMode
	}{{dir, 0o700}, {path, 0o600}} {
		st, err := os.Stat(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != tt.want {
			t.Errorf("%s: got mode %v, want %v", tt.path, got, tt.want)
		}
	}
}

func TestOpenRecoversPartialLine(t *testing.T) {
	tests := []struct {
		name     string
		cut      func(size int64) int64 // the size a crash leaves
		wantSeq  uint64                 // of the recover entry
		wantPrev func(lines [][]byte) string
	}{
		{"mid last line", func(size int64) int64 { return size - 20 }, 5,
			func(l [][]byte) string { return hashOf(l[3]) }},
		{"only its newline", func(size int64) int64 { return size - 1 }, 5,
			func(l [][]byte) string { return hashOf(l[3]) }},
		{"inside the first line", func(int64) int64 { return 10 }, 1,
			func([][]byte) string { return GenesisHash }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			l := openTest(t, path)
			for i := range 5 {
				mustWrite(t, l, testEntry(i))
			}
			l.Close()
			orig := readLines(t, path)
			st, _ := os.Stat(path)
			newSize := tt.cut(st.Size())
			if err := os.Truncate(path, newSize); err != nil {
				t.Fatal(err)
			}

			f, _ := os.Open(path)
			_, err := Verify(f)
			f.Close()
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("Verify before recovery: got %v, want ErrTruncated", err)
			}

			l = openTest(t, path)
			l.Close()
			sum := verifyFile(t, path)
			lines := readLines(t, path)
			rec := parseLine(t, lines[len(lines)-1])
			lastComplete := bytes.LastIndexByte(mustRead(t, path)[:newSize], '\n') + 1
			dropped := fmt.Sprint(newSize - int64(lastComplete))
			switch {
			case sum.LastSeq != tt.wantSeq || rec.Seq != tt.wantSeq:
				t.Errorf("recover entry seq: got %d (summary %d), want %d", rec.Seq, sum.LastSeq, tt.wantSeq)
			case rec.Op != "audit.recover" || rec.Outcome != OutcomeOK:
				t.Errorf("last entry: got op %q outcome %q, want audit.recover ok", rec.Op, rec.Outcome)
			case !strings.Contains(rec.Reason, dropped+" bytes") || rec.Extra["dropped_bytes"] != dropped:
				t.Errorf("recover entry does not say %s bytes were dropped: %+v", dropped, rec)
			case rec.Prev != tt.wantPrev(orig):
				t.Errorf("recover entry prev: got %s, want %s", rec.Prev, tt.wantPrev(orig))
			}
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenRejectsForeignLastLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if l, err := Open(path); err == nil {
		l.Close()
		t.Fatal("Open of a file that is not an audit log: got nil error")
	}
}

func TestCloseDuringWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, path)
	var ok atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				err := l.Write(context.Background(), testEntry(g*1000+i))
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Write: %v", err)
					return
				}
				ok.Add(1)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	// Every acknowledged entry is in the file, and nothing else.
	if sum := verifyFile(t, path); int64(sum.Lines) != ok.Load() {
		t.Errorf("file has %d lines, %d Writes returned nil", sum.Lines, ok.Load())
	}
}

package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// makeLog writes n entries with a Log and returns the file's lines.
func makeLog(t testing.TB, n int) (lines [][]byte, head string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, WithSync(SyncNone))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		e := testEntry(i)
		if i%3 == 0 {
			e.Outcome, e.Reason = OutcomeDenied, "policy \"ro\" does not allow get"
		}
		if err := l.Write(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	_, head = l.Head()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(data, []byte("\n"))[:n], head
}

// rewrite re-encodes a line (with its newline) after changing its entry.
func rewrite(t testing.TB, line []byte, change func(*Entry)) []byte {
	t.Helper()
	var e Entry
	if err := json.Unmarshal(line, &e); err != nil {
		t.Fatal(err)
	}
	change(&e)
	return append(appendEntry(nil, &e), '\n')
}

// forged is a well-formed line a forger would insert at position k: seq k,
// chained from line k-1 (lines are 0-indexed here, positions 1-based).
func forged(t testing.TB, lines [][]byte, k int) []byte {
	e := testEntry(999)
	e.Seq, e.Time, e.Prev = uint64(k), time.Now(), GenesisHash
	if k > 1 {
		e.Prev = hashOf(bytes.TrimSuffix(lines[k-2], []byte("\n")))
	}
	return append(appendEntry(nil, &e), '\n')
}

func TestVerifyFindsTampering(t *testing.T) {
	const n, k = 20, 7 // k is a 1-based line number
	orig, _ := makeLog(t, n)
	tests := []struct {
		name     string
		tamper   func(lines [][]byte) [][]byte
		wantLine int
		wantText string
	}{
		{"edit a field of line k", func(l [][]byte) [][]byte {
			l[k-1] = rewrite(t, l[k-1], func(e *Entry) { e.Op = "secret.put" })
			return l
		}, k, "edited"},
		{"edit the actor of line 1", func(l [][]byte) [][]byte {
			l[0] = bytes.Replace(l[0], []byte("token:3f2a9c"), []byte("token:000000"), 1)
			return l
		}, 1, "edited"},
		{"edit the prev of line k", func(l [][]byte) [][]byte {
			l[k-1] = rewrite(t, l[k-1], func(e *Entry) { e.Prev = hashOf([]byte("x")) })
			return l
		}, k, "prev hash does not match line 6"},
		{"edit the seq of line k", func(l [][]byte) [][]byte {
			l[k-1] = rewrite(t, l[k-1], func(e *Entry) { e.Seq = 70 })
			return l
		}, k, "seq was edited"},
		{"edit the prev of line 1", func(l [][]byte) [][]byte {
			l[0] = rewrite(t, l[0], func(e *Entry) { e.Prev = hashOf([]byte("x")) })
			return l
		}, 1, "genesis"},
		{"edit line n-1 (ambiguous with the last line)", func(l [][]byte) [][]byte {
			l[n-2] = rewrite(t, l[n-2], func(e *Entry) { e.Outcome = OutcomeOK })
			return l
		}, n, "prev hash does not match line 19"},
		{"delete line k", func(l [][]byte) [][]byte {
			return slices.Delete(l, k-1, k)
		}, k, "1 line(s) were removed"},
		{"delete lines k to k+2", func(l [][]byte) [][]byte {
			return slices.Delete(l, k-1, k+2)
		}, k, "3 line(s) were removed"},
		{"swap lines k and k+1", func(l [][]byte) [][]byte {
			l[k-1], l[k] = l[k], l[k-1]
			return l
		}, k, "swapped"},
		{"move line k to the end", func(l [][]byte) [][]byte {
			m := l[k-1]
			return append(slices.Delete(l, k-1, k), m)
		}, k, "removed before this line, or it was moved here"},
		{"move line 15 up to k", func(l [][]byte) [][]byte {
			m := l[14]
			return slices.Insert(slices.Delete(l, 14, 15), k-1, m)
		}, k, "inserted or moved"},
		{"insert a copy of line 3 at k", func(l [][]byte) [][]byte {
			return slices.Insert(l, k-1, l[2])
		}, k, "inserted"},
		{"insert a forged line at k", func(l [][]byte) [][]byte {
			return slices.Insert(l, k-1, forged(t, l, k))
		}, k, "inserted"},
		{"insert a forged line at k and renumber the rest", func(l [][]byte) [][]byte {
			l = slices.Insert(l, k-1, forged(t, l, k))
			for i := k; i < len(l); i++ {
				l[i] = rewrite(t, l[i], func(e *Entry) { e.Seq++ })
			}
			return l
		}, k, "inserted"},
		{"insert a forged line at 1", func(l [][]byte) [][]byte {
			return slices.Insert(l, 0, forged(t, l, 1))
		}, 1, "inserted"},
		{"garbage line at k", func(l [][]byte) [][]byte {
			l[k-1] = []byte("{\"seq\":7,\n")
			return l
		}, k, "not an audit entry"},
		{"empty line at k", func(l [][]byte) [][]byte {
			return slices.Insert(l, k-1, []byte("\n"))
		}, k, "not an audit entry"},
		{"truncate mid-line", func(l [][]byte) [][]byte {
			l[n-1] = l[n-1][:len(l[n-1])/2]
			return l
		}, n, "no newline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines := make([][]byte, len(orig))
			for i, l := range orig {
				lines[i] = slices.Clone(l)
			}
			sum, err := Verify(bytes.NewReader(bytes.Join(tt.tamper(lines), nil)))
			var ce *ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("Verify: got %v, want a *ChainError", err)
			}
			if sum.Lines != ce.Line-1 {
				t.Errorf("summary: got %d good lines before the break at line %d", sum.Lines, ce.Line)
			}
			if ce.Line != tt.wantLine || !strings.Contains(ce.Reason, tt.wantText) {
				t.Errorf("got %q, want line %d and a reason containing %q", err, tt.wantLine, tt.wantText)
			}
		})
	}
}

func TestChainErrorMessage(t *testing.T) {
	tests := []struct {
		err  *ChainError
		want string
	}{
		{&ChainError{Line: 17, Seq: 17, Reason: "prev hash does not match line 16"},
			"audit log broken at line 17 (seq 17): prev hash does not match line 16"},
		{&ChainError{Line: 3, Reason: "the line has no seq"}, "audit log broken at line 3: the line has no seq"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
	var ce error = &ChainError{Line: 1, Err: ErrTruncated}
	if !errors.Is(ce, ErrTruncated) {
		t.Error("ChainError does not unwrap to ErrTruncated")
	}
}

func TestVerifyValidLogs(t *testing.T) {
	lines, head := makeLog(t, 20)
	tests := []struct {
		name string
		in   [][]byte
		want Summary
	}{
		{"empty", nil, Summary{Head: GenesisHash}},
		{"whole log", lines, Summary{Lines: 20, FirstSeq: 1, FirstPrev: GenesisHash, LastSeq: 20, Head: head}},
		{"rotated: starts at seq 5", lines[4:], Summary{Lines: 16, FirstSeq: 5,
			FirstPrev: hashOf(bytes.TrimSuffix(lines[3], []byte("\n"))), LastSeq: 20, Head: head}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Verify(bytes.NewReader(bytes.Join(tt.in, nil)))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestVerifyHeadCatchesEditOfLastLine(t *testing.T) {
	lines, head := makeLog(t, 5)
	lines[4] = rewrite(t, lines[4], func(e *Entry) { e.Path = "app/other" })
	sum, err := Verify(bytes.NewReader(bytes.Join(lines, nil)))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if sum.Head == head {
		t.Error("Head of an edited log equals the Log's head")
	}
}

func TestLongLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, path, WithSync(SyncNone))
	for i := range 3 {
		e := testEntry(i)
		e.Reason = strings.Repeat("long ", 100_000) // 500 KB: past bufio's and Open's read sizes
		mustWrite(t, l, e)
	}
	_, head := l.Head()
	l.Close()
	if sum := verifyFile(t, path); sum.Lines != 3 || sum.Head != head {
		t.Errorf("Verify: got %d lines, head %s; want 3, %s", sum.Lines, sum.Head, head)
	}

	l = openTest(t, path) // finds the last line by reading backwards
	if seq, got := l.Head(); seq != 3 || got != head {
		t.Errorf("Head after reopen: got (%d, %s), want (3, %s)", seq, got, head)
	}
	mustWrite(t, l, testEntry(4))
	l.Close()
	verifyFile(t, path)
}

func FuzzVerify(f *testing.F) {
	lines, _ := makeLog(f, 6)
	log := bytes.Join(lines, nil)
	f.Add(log)
	f.Add(log[:len(log)-7])
	f.Add(bytes.Join([][]byte{lines[0], lines[2], lines[1]}, nil))
	f.Add(bytes.Join([][]byte{lines[0], lines[1], lines[3], lines[4]}, nil))
	f.Add(bytes.Join([][]byte{lines[0], lines[1], lines[1], lines[2]}, nil))
	f.Add(bytes.Join(lines[2:], nil))
	f.Add(append(slices.Clone(lines[0]), "null\n"...))
	f.Add([]byte("{}\n"))
	f.Add([]byte("\n\n"))
	f.Add([]byte(`{"seq":1,"prev":"0000000000000000000000000000000000000000000000000000000000000000"}` + "\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		sum, err := Verify(bytes.NewReader(in))
		var ce *ChainError
		switch {
		case err == nil:
			if len(in) > 0 && in[len(in)-1] != '\n' {
				t.Fatal("Verify accepted input that does not end in a newline")
			}
			if sum.Lines != bytes.Count(in, []byte("\n")) {
				t.Fatalf("Verify counted %d lines in input with %d", sum.Lines, bytes.Count(in, []byte("\n")))
			}
		case errors.As(err, &ce):
			if ce.Line < 1 || ce.Line > bytes.Count(in, []byte("\n"))+1 || sum.Lines >= ce.Line {
				t.Fatalf("ChainError at line %d after %d good lines, in %d lines", ce.Line, sum.Lines, bytes.Count(in, []byte("\n"))+1)
			}
		default:
			t.Fatalf("Verify: unexpected error %v", err)
		}
	})
}

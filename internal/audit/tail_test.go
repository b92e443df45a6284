package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// onlySeeker hides io.ReaderAt, so Tail takes its seek-and-read path.
type onlySeeker struct{ io.ReadSeeker }

func TestTail(t *testing.T) {
	long := strings.Repeat("x", 3*scanChunk/2) // lines that span read chunks
	content := "a\nbb\n" + long + "\nccc\n"
	tests := []struct {
		name string
		data string
		n    int
		want []string
	}{
		{"empty file", "", 3, nil},
		{"zero lines", content, 0, nil},
		{"last line", content, 1, []string{"ccc"}},
		{"last two", content, 2, []string{long, "ccc"}},
		{"all", content, 4, []string{"a", "bb", long, "ccc"}},
		{"more than there are", content, 10, []string{"a", "bb", long, "ccc"}},
		{"partial tail left out", content + "dd", 2, []string{long, "ccc"}},
		{"only a partial line", "dd", 2, nil},
		{"empty lines", "\n\nx\n", 3, []string{"", "", "x"}},
	}
	for _, tt := range tests {
		for _, wrap := range []struct {
			name string
			r    func(string) io.ReadSeeker
		}{
			{"ReaderAt", func(s string) io.ReadSeeker { return strings.NewReader(s) }},
			{"Seeker", func(s string) io.ReadSeeker { return onlySeeker{strings.NewReader(s)} }},
		} {
			t.Run(tt.name+"/"+wrap.name, func(t *testing.T) {
				lines, err := Tail(wrap.r(tt.data), tt.n)
				if err != nil {
					t.Fatalf("Tail: %v", err)
				}
				var got []string
				for _, l := range lines {
					got = append(got, string(l))
				}
				if fmt.Sprint(got) != fmt.Sprint(tt.want) || len(got) != len(tt.want) {
					t.Errorf("got %d lines %.40q, want %d lines %.40q", len(got), got, len(tt.want), tt.want)
				}
			})
		}
	}
}

// follow runs Follow in the background and returns its lines as they come.
func follow(t *testing.T, path string, from int64) (<-chan string, context.CancelFunc, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lines := make(chan string, 100)
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done <- Follow(ctx, path, from, func(line []byte) error {
			lines <- string(line)
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); <-finished })
	return lines, cancel, done
}

func expectLines(t *testing.T, lines <-chan string, want ...string) {
	t.Helper()
	for _, w := range want {
		select {
		case got := <-lines:
			if got != w {
				t.Fatalf("got line %q, want %q", got, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no line after 5s; want %q", w)
		}
	}
	select {
	case got := <-lines:
		t.Fatalf("unexpected line %q", got)
	case <-time.After(2 * FollowInterval):
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func TestFollow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	appendFile(t, path, "one\ntwo\nthr")
	lines, cancel, done := follow(t, path, 0)
	expectLines(t, lines, "one", "two")

	appendFile(t, path, "ee\nfour\n")
	expectLines(t, lines, "three", "four")

	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Follow after cancel: got %v, want context.Canceled", err)
	}
}

func TestFollowFromMidLine(t *testing.T) {
	tests := []struct {
		from int64
		want []string
	}{
		{0, []string{"one", "two"}},
		{4, []string{"two"}}, // a line start
		{6, []string{"two"}}, // inside "two": Follow starts at its line
		{8, nil},             // start of the partial line
		{11, nil},            // inside the partial line
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.from), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			appendFile(t, path, "one\ntwo\nthr")
			lines, _, _ := follow(t, path, tt.from)
			expectLines(t, lines, tt.want...)
			appendFile(t, path, "ee\n")
			expectLines(t, lines, "three") // the partial line, once complete
		})
	}
}

func TestFollowStopsWithCallbackError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	appendFile(t, path, "one\ntwo\n")
	stop := errors.New("client went away")
	var got []string
	err := Follow(context.Background(), path, 0, func(line []byte) error {
		got = append(got, string(line))
		return stop
	})
	if err != stop || len(got) != 1 {
		t.Errorf("got %v after %q, want %v after one line", err, got, stop)
	}
}

func TestFollowAcrossRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	appendFile(t, path, "old1\n")
	lines, _, _ := follow(t, path, 0)
	expectLines(t, lines, "old1")

	appendFile(t, path, "old2\n")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, "new1\n")
	expectLines(t, lines, "old2", "new1")
}

func TestFollowFailsWhenFileShrinks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	appendFile(t, path, "one\ntwo\n")
	lines, _, done := follow(t, path, 0)
	expectLines(t, lines, "one", "two")
	if err := os.Truncate(path, 2); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "shrank") {
			t.Errorf("Follow: got %v, want an error saying the file shrank", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not notice the file shrank")
	}
}

func TestTailOfLog(t *testing.T) {
	lines, _ := makeLog(t, 10)
	got, err := Tail(bytes.NewReader(bytes.Join(lines, nil)), 3)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range got {
		if want := bytes.TrimSuffix(lines[7+i], []byte("\n")); !bytes.Equal(l, want) {
			t.Errorf("line %d: got %s, want %s", i, l, want)
		}
	}
}

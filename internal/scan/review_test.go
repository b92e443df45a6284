package scan

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// A known value next to the end of a read chunk: the excerpt of a value
// just before it must not show the start of the next one, which the
// scanner cannot yet see whole.
func TestScanExcerptAtChunkEdge(t *testing.T) {
	user, pass := "svc_deploy_"+randText(t, 8), "Tr0ub4dor&3-"+randText(t, 8)
	line := []byte("postgres://" + user + ":" + pass + "@db/x\n")
	// Put the user's end 16 bytes before the first chunk boundary.
	at := chunkSize - 16 - len("postgres://") - len(user)
	body := append(filler(at), line...)
	body = append(body, filler(1000)...)
	path, _ := synthArchive(t, nil, synthLayer{createdBy: "COPY", entries: []synthEntry{sfile("etc/db.url", body)}})
	res := scanArchive(t, Options{NoRules: true, Known: []Known{
		{Name: "user", Value: []byte(user)}, {Name: "pass", Value: []byte(pass)},
	}}, path)
	out, _ := json.Marshal(res)
	for _, piece := range []string{pass[:8], pass[4:12], user[:8]} {
		if bytes.Contains(out, []byte(piece)) {
			t.Errorf("the report shows %q of a value: %s", piece, out)
		}
	}
	if len(res.Findings) != 2 {
		t.Errorf("got %d findings, want 2 (user and password)", len(res.Findings))
	}
}

// Values too short to scan for are still masked in what a report shows,
// and a label's key is shown masked too.
func TestScanMasksShortValuesAndLabelKeys(t *testing.T) {
	pin, long, key := "abc123", randText(t, 20), "auth."+randText(t, 12)
	path, _ := synthArchive(t, func(c *v1.ConfigFile) {
		c.Config.Labels = map[string]string{key: long}
	}, synthLayer{createdBy: "|2 PIN=" + pin + " KEY=" + long + " /bin/sh -c setup", entries: []synthEntry{
		sfile("etc/app", []byte("key "+long+"\n")),
	}})
	res := scanArchive(t, Options{NoRules: true, Known: []Known{
		{Name: "pin", Value: []byte(pin)}, {Name: "long", Value: []byte(long)}, {Name: "labelkey", Value: []byte(key)},
	}}, path)
	out, _ := json.Marshal(res)
	var text bytes.Buffer
	WriteText(&text, res.Findings)
	for _, v := range []string{pin, long, key} {
		if bytes.Contains(out, []byte(v)) || strings.Contains(text.String(), v) {
			t.Errorf("a report shows the value %q:\n%s", v, text.String())
		}
	}
}

// Two different detector secrets on one line are two findings.
func TestScanTwoRuleSecretsOnOneLine(t *testing.T) {
	a := "ghp_" + strings.Repeat("A1b2C3d4E5", 3) + "f6G7h8"
	b := "ghp_" + strings.Repeat("Z9y8X7w6V5", 3) + "u4T3s2"
	path, _ := synthArchive(t, nil, synthLayer{createdBy: "COPY", entries: []synthEntry{
		sfile("app/config.json", []byte(`{"t1":"`+a+`","t2":"`+b+`"}`)),
	}})
	res := scanArchive(t, Options{}, path)
	n := 0
	for _, f := range res.Findings {
		if f.Rule == "github-token" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("got %d github-token findings, want 2: %+v", n, res.Findings)
	}
}

// A multi-line value that crosses a chunk boundary and is longer than the
// buffer keeps is reported on the line it starts on.
func TestScanLineOfLongValue(t *testing.T) {
	var v bytes.Buffer
	v.WriteString("-----BEGIN TEST KEY-----\n")
	for v.Len() < 4000 {
		v.WriteString(randText(t, 64) + "\n")
	}
	value := v.Bytes()
	prefix := filler(chunkSize - 2000)
	body := append(append(append([]byte{}, prefix...), value...), '\n')
	path, _ := synthArchive(t, nil, synthLayer{createdBy: "COPY", entries: []synthEntry{sfile("k.pem", body)}})
	res := scanArchive(t, Options{NoRules: true, Known: []Known{{Name: "key", Value: value}}}, path)
	want := lineAt(body, len(prefix))
	for _, f := range res.Findings {
		if f.Encoding == "raw" && f.Line != want {
			t.Errorf("got line %d, want %d", f.Line, want)
		}
	}
}

// A value on every line of a big file is listed maxPerFile times, and the
// rest are counted.
func TestScanBoundsFindingsPerFile(t *testing.T) {
	v := randText(t, 20)
	var body bytes.Buffer
	for i := 0; i < 500; i++ {
		body.WriteString("token " + v + "\n")
	}
	path, _ := synthArchive(t, nil, synthLayer{createdBy: "COPY", entries: []synthEntry{sfile("log", body.Bytes())}})
	res := scanArchive(t, Options{NoRules: true, Known: []Known{{Name: "v", Value: []byte(v)}}}, path)
	if len(res.Findings) != maxPerFile {
		t.Fatalf("got %d findings, want %d", len(res.Findings), maxPerFile)
	}
	more := 0
	for _, f := range res.Findings {
		more += f.More
	}
	if more != 500-maxPerFile {
		t.Errorf("got %d more, want %d", more, 500-maxPerFile)
	}
}

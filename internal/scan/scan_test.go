package scan

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/privyhq/privy/internal/scan/image"
	"github.com/privyhq/privy/internal/scan/match"
)

// synthEntry is an entry of a synthetic layer: a regular file unless typ
// says otherwise.
type synthEntry struct {
	name string
	body []byte
	typ  byte
}

func sfile(name string, body []byte) synthEntry { return synthEntry{name: name, body: body} }
func sdir(name string) synthEntry               { return synthEntry{name: name, typ: tar.TypeDir} }

// swhiteout deletes dir/name in a later layer.
func swhiteout(dir, name string) synthEntry {
	return synthEntry{name: dir + "/.wh." + name}
}

// synthLayer is one layer of a synthetic image.
type synthLayer struct {
	createdBy string
	entries   []synthEntry
}

// tarBytes writes entries as a tar in memory.
func tarBytes(t testing.TB, entries []synthEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, ModTime: time.Unix(1e9, 0)}
		switch e.typ {
		case 0:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
		case tar.TypeDir:
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func tarGz(t testing.TB, entries []synthEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(tarBytes(t, entries))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// synthArchive writes a `docker save` tarball of layers (legacy layout, as
// Docker 20.10 writes it) and returns its path and the diff IDs of its
// layers. edit, if set, changes the config before it is written; the
// history has one entry per layer, in order.
func synthArchive(t testing.TB, edit func(*v1.ConfigFile), layers ...synthLayer) (string, []string) {
	t.Helper()
	cfg := v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers"}}
	files := map[string][]byte{}
	var paths, diffIDs []string
	for i, l := range layers {
		tb := tarBytes(t, l.entries)
		d := sha256Hex(tb)
		diffIDs = append(diffIDs, "sha256:"+d)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, v1.Hash{Algorithm: "sha256", Hex: d})
		cfg.History = append(cfg.History, v1.History{CreatedBy: l.createdBy})
		id := sha256Hex([]byte(fmt.Sprint("layer", i, d)))
		files[id+"/VERSION"] = []byte("1.0")
		files[id+"/layer.tar"] = tb
		paths = append(paths, id+"/layer.tar")
	}
	if edit != nil {
		edit(&cfg)
	}
	config, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgName := sha256Hex(config) + ".json"
	files[cfgName] = config
	man, _ := json.Marshal([]map[string]any{{"Config": cfgName, "RepoTags": []string{"synth:1"}, "Layers": paths}})
	files["manifest.json"] = man

	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var entries []synthEntry
	for _, n := range names {
		entries = append(entries, sfile(n, files[n]))
	}
	p := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(p, tarBytes(t, entries), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, diffIDs
}

// randText returns n random letters and digits.
func randText(t testing.TB, n int) string {
	t.Helper()
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func randBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// scanArchive scans the docker-archive at path.
func scanArchive(t testing.TB, opts Options, path string) *Result {
	t.Helper()
	sc, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	res, err := sc.Scan(context.Background(), "docker-archive:"+path)
	if err != nil {
		t.Fatalf("scanning %s: %v", path, err)
	}
	return res
}

// place is where a test expects a finding; Secret or Rule names what.
type place struct {
	Kind, Secret, Rule, Encoding string
	Where, Field                 string
	Layer                        int
	Path                         string
	Inner                        []string
	Line                         int
	Present                      bool
}

func placeOf(f Finding) place {
	return place{Kind: f.Kind, Secret: f.Secret, Rule: f.Rule, Encoding: f.Encoding, Where: f.Where, Field: f.Field,
		Layer: f.Layer, Path: f.Path, Inner: f.Inner, Line: f.Line, Present: f.Present}
}

func (p place) String() string {
	b, _ := json.Marshal(p)
	return string(b)
}

// checkPlaces compares the findings with want, in any order.
func checkPlaces(t *testing.T, got []Finding, want []place) {
	t.Helper()
	var gs, ws []string
	for _, f := range got {
		gs = append(gs, placeOf(f).String())
	}
	for _, p := range want {
		ws = append(ws, p.String())
	}
	sort.Strings(gs)
	sort.Strings(ws)
	if strings.Join(gs, "\n") == strings.Join(ws, "\n") {
		return
	}
	count := map[string]int{}
	for _, g := range gs {
		count[g]++
	}
	for _, w := range ws {
		count[w]--
	}
	var extra, missing []string
	for k, n := range count {
		for ; n > 0; n-- {
			extra = append(extra, k)
		}
		for ; n < 0; n++ {
			missing = append(missing, k)
		}
	}
	sort.Strings(extra)
	sort.Strings(missing)
	t.Errorf("findings: got %d, want %d\nunexpected:\n  %s\nmissing:\n  %s",
		len(gs), len(ws), strings.Join(extra, "\n  "), strings.Join(missing, "\n  "))
}

// lineAt returns the 1-based line of offset off in data.
func lineAt(data []byte, off int) int { return bytes.Count(data[:off], []byte{'\n'}) + 1 }

func TestScanKnownEncodings(t *testing.T) {
	// The middle makes the URL and JSON forms differ from the raw value,
	// and the base64url forms from the base64 ones: a run of '?' puts a
	// '/' in the value's base64 at every alignment.
	v := randText(t, 8) + `&"<??????` + randText(t, 8)
	n := 0
	for _, f := range match.Forms([]byte(v)) {
		if f.Encoding == "base64url" {
			n++
		}
	}
	if n != 4 {
		t.Fatalf("the value has %d base64url forms distinct from its base64 ones, want 4", n)
	}
	known := []Known{{Name: "app/db", Value: []byte(v)}}

	b64 := func(enc *base64.Encoding, off int) []byte {
		blob := append(append(randBytes(t, off), v...), randBytes(t, 21)...)
		return []byte("blob:\n" + enc.EncodeToString(blob) + "\n")
	}
	jsonV, _ := json.Marshal(v)
	layer0 := []synthEntry{
		sdir("etc/"),
		sfile("etc/raw.conf", []byte("# app\nname=app\ndb "+v+" end\n")),
		sfile("etc/hex.txt", []byte(hex.EncodeToString([]byte(v))+"\n")),
		sfile("etc/HEX.txt", []byte("\n\n"+strings.ToUpper(hex.EncodeToString([]byte(v))))),
	}
	layer1 := []synthEntry{
		sfile("srv/b64-0.txt", b64(base64.StdEncoding, 0)),
		sfile("srv/b64-1.txt", b64(base64.StdEncoding, 1)),
		sfile("srv/b64-2.txt", b64(base64.StdEncoding, 2)),
		sfile("srv/b64-5.txt", b64(base64.StdEncoding, 5)),
		sfile("srv/b64url-1.txt", b64(base64.URLEncoding, 1)),
		sfile("srv/alone.b64", []byte(base64.StdEncoding.EncodeToString([]byte(v)))),
		sfile("srv/url.txt", []byte("x\nhttps://db.internal/?user=app&password="+url.QueryEscape(v)+"&x=1\n")),
		sfile("srv/app.json", []byte("{\n  \"user\": \"app\",\n  \"pw\": "+string(jsonV)+"\n}\n")),
	}
	path, diffIDs := synthArchive(t, nil,
		synthLayer{createdBy: "ADD rootfs /", entries: layer0},
		synthLayer{createdBy: "COPY srv /srv", entries: layer1})
	res := scanArchive(t, Options{Known: known, NoRules: true}, path)

	at := func(layer int, p string, line int, enc string) place {
		return place{Kind: "known", Secret: "app/db", Encoding: enc, Where: "layer", Layer: layer, Path: p, Line: line, Present: true}
	}
	checkPlaces(t, res.Findings, []place{
		at(0, "etc/raw.conf", 3, "raw"),
		at(0, "etc/hex.txt", 1, "hex"),
		at(0, "etc/HEX.txt", 3, "HEX"),
		at(1, "srv/b64-0.txt", 2, "base64"),
		at(1, "srv/b64-1.txt", 2, "base64"),
		at(1, "srv/b64-2.txt", 2, "base64"),
		at(1, "srv/b64-5.txt", 2, "base64"),
		at(1, "srv/b64url-1.txt", 2, "base64url"),
		at(1, "srv/alone.b64", 1, "base64"),
		at(1, "srv/url.txt", 2, "url"),
		at(1, "srv/app.json", 3, "json"),
	})
	for _, f := range res.Findings {
		if f.LayerDigest != diffIDs[f.Layer] {
			t.Errorf("%s: layer digest %s, want %s", f.Path, f.LayerDigest, diffIDs[f.Layer])
		}
		if want := []string{"ADD rootfs /", "COPY srv /srv"}[f.Layer]; f.CreatedBy != want {
			t.Errorf("%s: created_by %q, want %q", f.Path, f.CreatedBy, want)
		}
		if f.Image != "docker-archive:"+path {
			t.Errorf("%s: image %q", f.Path, f.Image)
		}
	}
	if res.Layers != 2 || res.Files != 11 {
		t.Errorf("got %d layers and %d files, want 2 and 11", res.Layers, res.Files)
	}
}

// filler returns n bytes of lines that hold no keyword of any rule.
func filler(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "filler line %07d of plain words here\n", i)
	}
	return b.Bytes()[:n]
}

func TestScanChunkBoundaries(t *testing.T) {
	v1s, v2s, v3s := randText(t, 24), randText(t, 40), randText(t, 12)
	pw1, pw2 := "Zq8#vLp2mX9wKr4T", "Hy7$dN3fQ1sW6uEc"
	data := filler(4*chunkSize + 1000)
	put := func(off int, s string) int {
		copy(data[off:], s)
		return off
	}
	// Known values across the first and second read boundaries, and one
	// ending exactly at the first.
	o1 := put(chunkSize-5, v1s)
	o2 := put(2*chunkSize-17, v2s)
	o3 := put(chunkSize-len(v3s)-100, "\n"+v3s+"\n") + 1
	// A keyword that straddles a boundary, and one whose value lies in the
	// next read.
	k1 := put(3*chunkSize-4, "\npassword="+pw1+"\n") + 1
	k2 := put(4*chunkSize-12, "\npasswd = "+pw2+"\n") + 1
	lay := []synthEntry{sfile("var/big.log", data)}
	path, _ := synthArchive(t, nil, synthLayer{createdBy: "COPY big.log /var/", entries: lay})
	res := scanArchive(t, Options{Known: []Known{
		{Name: "v1", Value: []byte(v1s)}, {Name: "v2", Value: []byte(v2s)}, {Name: "v3", Value: []byte(v3s)},
	}}, path)
	known := func(name string, off int) place {
		return place{Kind: "known", Secret: name, Encoding: "raw", Where: "layer", Path: "var/big.log", Line: lineAt(data, off), Present: true}
	}
	rule := func(off int) place {
		return place{Kind: "rule", Rule: "password-assignment", Where: "layer", Path: "var/big.log", Line: lineAt(data, off), Present: true}
	}
	checkPlaces(t, res.Findings, []place{known("v1", o1), known("v2", o2), known("v3", o3), rule(k1), rule(k2)})
	if res.Bytes != int64(len(data)) {
		t.Errorf("scanned %d bytes, want %d", res.Bytes, len(data))
	}
}

func TestScanPresence(t *testing.T) {
	vals := map[string]string{}
	for _, n := range []string{"deleted", "opaque", "overwritten", "present", "dirgone"} {
		vals[n] = randText(t, 20)
	}
	var known []Known
	for n, v := range vals {
		known = append(known, Known{Name: n, Value: []byte(v)})
	}
	path, _ := synthArchive(t, nil,
		synthLayer{createdBy: "COPY . /", entries: []synthEntry{
			sfile("app/key.txt", []byte("k="+vals["deleted"])),
			sfile("data/x.txt", []byte(vals["opaque"])),
			sfile("etc/app.conf", []byte(vals["overwritten"])),
			sfile("keep/ok.txt", []byte(vals["present"])),
			sfile("tmp/build/cred", []byte(vals["dirgone"])),
		}},
		synthLayer{createdBy: "RUN rm -rf /app/key.txt /tmp/build && ...", entries: []synthEntry{
			swhiteout("app", "key.txt"),
			sdir("data/"),
			sfile("data/.wh..wh..opq", nil),
			sfile("etc/app.conf", []byte("clean\n")),
			swhiteout("tmp", "build"),
		}},
	)
	res := scanArchive(t, Options{Known: known, NoRules: true}, path)
	at := func(name, p string, present bool) place {
		return place{Kind: "known", Secret: name, Encoding: "raw", Where: "layer", Layer: 0, Path: p, Line: 1, Present: present}
	}
	checkPlaces(t, res.Findings, []place{
		at("deleted", "app/key.txt", false),
		at("opaque", "data/x.txt", false),
		at("overwritten", "etc/app.conf", false),
		at("present", "keep/ok.txt", true),
		at("dirgone", "tmp/build/cred", false),
	})
	var text bytes.Buffer
	WriteText(&text, res.Findings)
	if !strings.Contains(text.String(), "/app/key.txt:1 — deleted later, still in the layer") {
		t.Errorf("text report does not say the file was deleted:\n%s", text.String())
	}
}

func TestScanNestedArchive(t *testing.T) {
	v := randText(t, 20)
	inner := tarGz(t, []synthEntry{
		sdir("conf/"),
		sfile("conf/app.properties", []byte("# app\ndb.url=jdbc:x\ndb.pw="+v+"\n")),
	})
	path, _ := synthArchive(t, nil,
		synthLayer{createdBy: "ADD rootfs /", entries: []synthEntry{sfile("bin/true", []byte("#!/bin/sh\n"))}},
		synthLayer{createdBy: "COPY bundle.tar.gz /opt/", entries: []synthEntry{sfile("opt/bundle.tar.gz", inner)}},
	)
	res := scanArchive(t, Options{Known: []Known{{Name: "app/db", Value: []byte(v)}}, NoRules: true}, path)
	checkPlaces(t, res.Findings, []place{{Kind: "known", Secret: "app/db", Encoding: "raw", Where: "layer", Layer: 1,
		Path: "opt/bundle.tar.gz", Inner: []string{"conf/app.properties"}, Line: 3, Present: true}})
}

func TestScanConfig(t *testing.T) {
	env, label, cmd, arg, entry := randText(t, 20), randText(t, 20), randText(t, 20), randText(t, 20), randText(t, 20)
	path, _ := synthArchive(t, func(c *v1.ConfigFile) {
		c.Config.Env = []string{"PATH=/bin", "DB_PASSWORD=" + env}
		c.Config.Labels = map[string]string{"a.plain": "x", "org.example.token": label}
		c.Config.Cmd = []string{"/app", "--key=" + cmd}
		c.Config.Entrypoint = []string{"/entry", entry}
		// An ARG (empty layer) between the layers, then a RUN that used it.
		c.History = []v1.History{
			c.History[0],
			{CreatedBy: "/bin/sh -c #(nop)  ARG TOKEN", EmptyLayer: true},
			{CreatedBy: "|1 TOKEN=" + arg + " /bin/sh -c make"},
		}
	},
		synthLayer{createdBy: "ADD rootfs /", entries: []synthEntry{sfile("bin/true", []byte("#!/bin/sh\n"))}},
		synthLayer{createdBy: "RUN make", entries: []synthEntry{sfile("app", []byte("built"))}},
	)
	res := scanArchive(t, Options{NoRules: true, Known: []Known{
		{Name: "env", Value: []byte(env)}, {Name: "label", Value: []byte(label)}, {Name: "cmd", Value: []byte(cmd)},
		{Name: "arg", Value: []byte(arg)}, {Name: "entry", Value: []byte(entry)},
	}}, path)
	at := func(name, where, field string) place {
		return place{Kind: "known", Secret: name, Encoding: "raw", Where: where, Field: field, Layer: -1, Line: 1, Present: true}
	}
	checkPlaces(t, res.Findings, []place{
		at("env", "config", "Env[1]"),
		at("label", "config", `Labels["org.example.token"]`),
		at("cmd", "config", "Cmd[1]"),
		at("entry", "config", "Entrypoint[1]"),
		at("arg", "history", "history[2].created_by"),
	})
	// The layer made by the RUN is paired with its history entry, past
	// the empty ARG entry.
	for _, f := range res.Findings {
		if f.Where == "layer" {
			t.Errorf("unexpected layer finding %+v", f)
		}
	}
	// With the rules on, the assignments to names that say password or
	// token are rule findings too.
	res = scanArchive(t, Options{}, path)
	var rules []string
	for _, f := range res.Findings {
		rules = append(rules, f.Rule+"@"+f.Field)
	}
	want := `password-assignment@Env[1],password-assignment@Labels["org.example.token"],password-assignment@history[2].created_by`
	if got := strings.Join(rules, ","); got != want {
		t.Errorf("rule findings %s, want %s", got, want)
	}
}

func TestScanShortValues(t *testing.T) {
	short, long := "s3cr3t!", randText(t, 16)
	path, _ := synthArchive(t, nil, synthLayer{createdBy: "COPY", entries: []synthEntry{
		sfile("etc/short", []byte("pw "+short+"\n"+base64.StdEncoding.EncodeToString([]byte(short))+"\n")),
		sfile("etc/long", []byte(long)),
	}})
	sc, err := New(Options{NoRules: true, Known: []Known{{Name: "b/short", Value: []byte(short)}, {Name: "a/long", Value: []byte(long)}, {Name: "a/tiny", Value: []byte("x")}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(sc.Skipped(), ","); got != "a/tiny,b/short" {
		t.Errorf("skipped %q, want a/tiny,b/short", got)
	}
	res, err := sc.Scan(context.Background(), "docker-archive:"+path)
	if err != nil {
		t.Fatal(err)
	}
	checkPlaces(t, res.Findings, []place{{Kind: "known", Secret: "a/long", Encoding: "raw", Where: "layer", Path: "etc/long", Line: 1, Present: true}})

	if _, err := New(Options{NoRules: true, Known: []Known{{Name: "s", Value: []byte(short)}}}); err == nil {
		t.Error("New with only a short value and no rules: no error")
	}
}

// TestScanReportsHideValues checks that no report, in any format, holds a
// known value in any of its forms, even where values sit next to each
// other and where rules fire on them.
func TestScanReportsHideValues(t *testing.T) {
	user, pass, key := randText(t, 14), randText(t, 10)+"#9", randText(t, 24)
	values := []string{user, pass, key}
	jsonPass, _ := json.Marshal(pass)
	path, _ := synthArchive(t, func(c *v1.ConfigFile) {
		c.Config.Env = []string{"DB_USER=" + user, "DB_PASSWORD=" + pass}
		c.History[0].CreatedBy = "|2 USER=" + user + " PASS=" + pass + " /bin/sh -c setup"
	}, synthLayer{createdBy: "RUN setup", entries: []synthEntry{
		// Values next to each other on one line, in several encodings.
		sfile("etc/dsn", []byte("postgres://"+user+":"+pass+"@db/"+key+"\n")),
		sfile("etc/pair", []byte(pass+user+key+"\n"+key+pass+"\n")),
		sfile("etc/enc", []byte(hex.EncodeToString([]byte(user))+hex.EncodeToString([]byte(pass))+"\n"+
			base64.StdEncoding.EncodeToString([]byte(user+pass+key))+"\n")),
		sfile("etc/app.json", []byte(`{"password":`+string(jsonPass)+`,"user":"`+user+`"}`)),
		sfile("etc/app.env", []byte("password="+pass+"\ntoken="+key+"\n")),
	}})
	var known []Known
	for i, v := range values {
		known = append(known, Known{Name: fmt.Sprint("v", i), Value: []byte(v)})
	}
	res := scanArchive(t, Options{Known: known}, path)
	if len(res.Findings) < 10 {
		t.Fatalf("only %d findings", len(res.Findings))
	}
	js, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var text, rep, sarif bytes.Buffer
	if err := WriteText(&text, res.Findings); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(&rep, res.Findings); err != nil {
		t.Fatal(err)
	}
	if err := WriteSARIF(&sarif, "test", res.Findings); err != nil {
		t.Fatal(err)
	}
	// CreatedBy holds the history as the image does; a report of a
	// history finding names its field rather than copying it.
	for _, out := range []struct {
		name string
		b    []byte
	}{{"Result JSON", js}, {"text", text.Bytes()}, {"JSON", rep.Bytes()}, {"SARIF", sarif.Bytes()}} {
		for i, v := range values {
			for _, f := range match.Forms([]byte(v)) {
				if bytes.Contains(out.b, f.Bytes) {
					t.Errorf("%s report holds value v%d (%s form)", out.name, i, f.Encoding)
				}
			}
			// Any 8 bytes of a value is a leak too.
			for j := 0; j+8 <= len(v); j++ {
				if bytes.Contains(out.b, []byte(v[j:j+8])) {
					t.Errorf("%s report holds bytes %d..%d of value v%d", out.name, j, j+8, i)
					break
				}
			}
		}
	}
}

func TestScanBinaryKeyword(t *testing.T) {
	bin := append([]byte("\x7fELF\x02\x01\x01\x00\x00\x00"), randBytes(t, 300)...)
	bin = append(bin, "password="...)
	bin = append(bin, 0x00, 0x9c, 0xff, 0x13, 0xe2, 0x80, 0x01, 0xfe, 0x7f, 0x8a, 0x90, 0xc3)
	bin = append(bin, randBytes(t, 200)...)
	bin = append(bin, "\x00token:\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f"...)
	path, _ := synthArchive(t, nil, synthLayer{createdBy: "COPY app /bin/", entries: []synthEntry{sfile("bin/app", bin)}})
	res := scanArchive(t, Options{}, path)
	for _, f := range res.Findings {
		t.Errorf("binary bytes after a keyword: finding %s", placeOf(f))
	}
}

func TestScanErrors(t *testing.T) {
	sc, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := sc.Scan(ctx, "docker-archive:"+filepath.Join(t.TempDir(), "missing.tar")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing archive: got %v, want an error wrapping os.ErrNotExist", err)
	}
	if _, err := sc.Scan(ctx, "ftp:/x/y"); !errors.Is(err, image.ErrUnknownScheme) {
		t.Errorf("unknown scheme: got %v, want image.ErrUnknownScheme", err)
	}
	// A truncated archive is an error, not a panic.
	path, _ := synthArchive(t, nil, synthLayer{createdBy: "COPY", entries: []synthEntry{sfile("a", filler(1<<16))}})
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Scan(ctx, "docker-archive:"+path); err == nil {
		t.Error("truncated archive: no error")
	}
}

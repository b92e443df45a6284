package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// genSpec describes the synthetic image of the scanner benchmark.
type genSpec struct {
	seed   uint64
	layers int
	bytes  int64 // uncompressed layer data to aim for, all layers together
	known  int   // known values, the planted ones among them
}

// plant is a value hidden in the image, the way a real leak lands there.
type plant struct {
	how     string // a short description for the report
	value   string // the secret
	written string // the exact text written into the image (the value, or its encoding)
	layer   int
	path    string // in the layer; "a.tar.gz!/b" for a file inside an archive
	line    int    // 1-based line of the value in the known-values file
}

// genImage is a generated docker-archive and what the benchmark needs to
// know about it.
type genImage struct {
	archive    string // docker save tarball
	knownFile  string // one value per line
	layerBytes int64  // sum of the layer tars' sizes: the throughput's numerator
	files      int    // regular files over all layers, archives' contents not counted
	layerSizes []int64
	plants     []plant
	took       time.Duration
}

// planted-value positions: which layer each lands in, spread over the image.
const (
	plantRawLayer     = 3
	plantBase64Layer  = 7
	plantDeletedLayer = 9 // and deleted by a whiteout in the next layer
	plantTarGzLayer   = 12
	plantHexLayer     = 15
)

// generateImage writes a docker save tarball (legacy layout, as Docker
// 20.10 writes it: <id>/layer.tar, <config>.json, manifest.json) and the
// known-values file into dir. The same spec always gives the same bytes.
func generateImage(s genSpec, dir string) (*genImage, error) {
	if s.layers < plantHexLayer+2 {
		return nil, fmt.Errorf("the image needs at least %d layers to hold the planted values", plantHexLayer+2)
	}
	start := time.Now()
	rng := rand.New(rand.NewPCG(s.seed, s.seed^0x9e3779b97f4a7c15))
	g := &gen{rng: rng, text: textPool(rng, 8<<20), bin: binaryPool(s.seed, 32<<20)}
	img := &genImage{archive: filepath.Join(dir, "image.tar"), knownFile: filepath.Join(dir, "known.txt")}

	// The planted values: arbitrary passwords that no pattern describes.
	v := make([]string, 5)
	for i := range v {
		v[i] = randomValue(rng, 14+rng.IntN(14))
	}
	b64 := base64.StdEncoding.EncodeToString([]byte("svc-deploy:" + v[1]))
	img.plants = []plant{
		{how: "raw, in a .env file", value: v[0], written: v[0], layer: plantRawLayer, path: "srv/app/.env"},
		{how: "base64 (of user:password) inside a JSON config", value: v[1], written: b64, layer: plantBase64Layer, path: "etc/app/config.json"},
		{how: "raw, in a file deleted by the next layer", value: v[2], written: v[2], layer: plantDeletedLayer, path: "root/.config/app/deploy-token"},
		{how: "raw, in a file inside a .tar.gz", value: v[3], written: v[3], layer: plantTarGzLayer, path: "opt/vendor/bundle-1.4.2.tar.gz!/bundle-1.4.2/settings.py"},
		{how: "hex, in a binary", value: v[4], written: hex.EncodeToString([]byte(v[4])), layer: plantHexLayer, path: "usr/local/bin/appd"},
	}
	if err := writeKnown(img, rng, s.known); err != nil {
		return nil, err
	}

	f, err := os.Create(img.archive)
	if err != nil {
		return nil, fmt.Errorf("creating image: %w", err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 4<<20)
	out := tar.NewWriter(bw)
	var diffIDs, layerPaths []string
	var history []map[string]any
	budget := s.bytes / int64(s.layers)
	buf := new(bytes.Buffer)
	for i := range s.layers {
		buf.Reset()
		n, createdBy, err := g.layer(buf, i, budget, img.plants)
		if err != nil {
			return nil, fmt.Errorf("generating layer %d: %w", i, err)
		}
		img.files += n
		sum := sha256.Sum256(buf.Bytes())
		id := hex.EncodeToString(sum[:])
		name := id + "/layer.tar"
		if err := writeEntry(out, name, buf.Bytes()); err != nil {
			return nil, err
		}
		diffIDs = append(diffIDs, "sha256:"+id)
		layerPaths = append(layerPaths, name)
		history = append(history, map[string]any{"created": genTime.Format(time.RFC3339), "created_by": createdBy})
		img.layerBytes += int64(buf.Len())
		img.layerSizes = append(img.layerSizes, int64(buf.Len()))
	}
	cfg, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      genTime.Format(time.RFC3339),
		"config": map[string]any{
			"Env":        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "APP_ENV=production"},
			"Cmd":        []string{"/usr/local/bin/appd", "--config", "/etc/app/config.json"},
			"WorkingDir": "/srv/app",
		},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": diffIDs},
		"history": history,
	})
	if err != nil {
		return nil, err
	}
	cfgSum := sha256.Sum256(cfg)
	cfgName := hex.EncodeToString(cfgSum[:]) + ".json"
	manifest, err := json.Marshal([]map[string]any{{
		"Config": cfgName, "RepoTags": []string{"privy-bench/scan:latest"}, "Layers": layerPaths,
	}})
	if err != nil {
		return nil, err
	}
	for _, e := range []struct {
		name string
		data []byte
	}{{cfgName, cfg}, {"manifest.json", manifest}} {
		if err := writeEntry(out, e.name, e.data); err != nil {
			return nil, err
		}
	}
	if err := out.Close(); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	img.took = time.Since(start)
	return img, nil
}

// genTime is the timestamp of every generated entry, for reproducible bytes.
var genTime = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func writeEntry(tw *tar.Writer, name string, data []byte) error {
	hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: genTime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if _, err := tw.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// writeKnown writes s.known values, one per line, with the planted ones at
// random lines.
func writeKnown(img *genImage, rng *rand.Rand, n int) error {
	if n < len(img.plants) {
		n = len(img.plants)
	}
	lines := make([]string, n)
	for i := range lines {
		lines[i] = randomValue(rng, 12+rng.IntN(29))
	}
	for i, p := range rng.Perm(n)[:len(img.plants)] {
		lines[p] = img.plants[i].value
		img.plants[i].line = p + 1
	}
	return os.WriteFile(img.knownFile, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

// valueChars are the characters of generated secrets: what a password
// manager produces, minus quotes, backslash and space, so that a value
// reads the same in every file format it is planted in.
const valueChars = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789!#%&*+-.:=?@^_~"

func randomValue(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = valueChars[rng.IntN(len(valueChars))]
	}
	return string(b)
}

// gen holds the pools file contents are cut from: generating a gigabyte
// word by word would take longer than scanning it.
type gen struct {
	rng  *rand.Rand
	text []byte // lines of code, config and logs
	bin  []byte // random bytes
	dirs map[string]bool
}

var words = strings.Fields(`the of and to in is for on with as by at from this that import return func def class
var let const if else elif for while break continue try except finally raise throw new delete public private static
void int string bool float char struct interface package module require include define error nil None null true false
self this config server client request response handler router service database cache queue worker logger metrics
user name email id value key hash digest checksum version build release debug info warn fatal path file dir url host
port timeout retry buffer stream reader writer open close read write flush sync lock unlock mutex channel select
session cookie header content type length status message data payload json yaml`)

// keywordLines are lines with the words detectors key on, as code that
// handles credentials has them; one line in 200 is one of these.
var keywordLines = []string{
	"    password_hash = hash_password(request.form[\"password\"])",
	"    token = self.session.get_token()",
	"SECRET_KEY = os.environ.get(\"SECRET_KEY\")",
	"    headers[\"Authorization\"] = \"Bearer \" + api_key",
	"# auth: see docs/authentication.md",
}

// textPool makes n bytes of text: code-like lines, key = value lines, log
// lines, checksums and UUIDs (look-alikes of secrets that are not secrets),
// and now and then a detector keyword, as real files have.
func textPool(rng *rand.Rand, n int) []byte {
	var b bytes.Buffer
	b.Grow(n + 256)
	hexd := "0123456789abcdef"
	for b.Len() < n {
		switch k := rng.IntN(200); {
		case k < 1:
			b.WriteString(keywordLines[rng.IntN(len(keywordLines))])
		case k < 120: // code
			b.WriteString(strings.Repeat("    ", rng.IntN(4)))
			for w := 3 + rng.IntN(9); w > 0; w-- {
				b.WriteString(words[rng.IntN(len(words))])
				b.WriteByte(" (.,=:"[rng.IntN(6)])
			}
		case k < 160: // key = value
			fmt.Fprintf(&b, "%s_%s = %s", words[rng.IntN(len(words))], words[rng.IntN(len(words))], words[rng.IntN(len(words))])
		case k < 180: // log line
			fmt.Fprintf(&b, "2025-01-%02d %02d:%02d:%02d INFO %s %s %d", 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(60),
				words[rng.IntN(len(words))], words[rng.IntN(len(words))], rng.IntN(100000))
		case k < 190: // checksum line, as in dpkg's md5sums
			for range 64 {
				b.WriteByte(hexd[rng.IntN(16)])
			}
			fmt.Fprintf(&b, "  usr/lib/%s/%s.so", words[rng.IntN(len(words))], words[rng.IntN(len(words))])
		default: // UUID
			for i := range 36 {
				if i == 8 || i == 13 || i == 18 || i == 23 {
					b.WriteByte('-')
				} else {
					b.WriteByte(hexd[rng.IntN(16)])
				}
			}
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// binaryPool makes n random bytes.
func binaryPool(seed uint64, n int) []byte {
	var key [32]byte
	for i := range 4 {
		for j := range 8 {
			key[i*8+j] = byte(seed >> (8 * j) * uint64(i+1))
		}
	}
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

// cut returns n bytes of pool from a random offset, wrapping around.
func (g *gen) cut(pool []byte, n int) []byte {
	off := g.rng.IntN(len(pool))
	if off+n <= len(pool) {
		return pool[off : off+n]
	}
	out := make([]byte, 0, n)
	for len(out) < n {
		k := min(n-len(out), len(pool)-off)
		out = append(out, pool[off:off+k]...)
		off = 0
	}
	return out
}

// logUniform returns a size between lo and hi, uniform in its logarithm,
// as file sizes are.
func (g *gen) logUniform(lo, hi int) int {
	return int(float64(lo) * math.Exp(g.rng.Float64()*math.Log(float64(hi)/float64(lo))))
}

var (
	textDirs = []string{"usr/share/doc", "usr/lib/python3/dist-packages", "usr/share/locale", "etc", "srv/app/src",
		"usr/include", "usr/share/man/man1", "opt/app/static", "usr/lib/node_modules", "var/lib/dpkg/info"}
	textExts = []string{".py", ".js", ".go", ".txt", ".md", ".conf", ".yaml", ".json", ".html", ".css", ".h", ".c", ".sh", ".rb"}
	binDirs  = []string{"usr/lib/x86_64-linux-gnu", "usr/bin", "usr/lib/jvm/lib", "opt/app/assets", "usr/share/fonts"}
	binExts  = []string{".so", "", ".bin", ".pyc", ".dat", ".png", ".ttf"}
)

// layer writes layer i as a tar stream of about budget bytes into w and
// returns its number of regular files and its history's created_by.
func (g *gen) layer(w *bytes.Buffer, i int, budget int64, plants []plant) (int, string, error) {
	tw := tar.NewWriter(w)
	g.dirs = map[string]bool{}
	files := 0
	add := func(name string, data []byte) error {
		if err := g.mkdirs(tw, path.Dir(name)); err != nil {
			return err
		}
		files++
		return writeEntry(tw, name, data)
	}
	// Planted files go among the others, a third of the way in.
	plantAt := budget / 3
	planted := false
	for n := 0; int64(w.Len()) < budget; n++ {
		if !planted && int64(w.Len()) >= plantAt {
			planted = true
			if err := g.plant(tw, i, plants, add); err != nil {
				return 0, "", err
			}
		}
		var name string
		var data []byte
		switch k := g.rng.IntN(100); {
		case k < 2: // compressed text, as /usr/share/doc/*/changelog.gz
			name = fmt.Sprintf("usr/share/doc/%s-%d/changelog.Debian.gz", words[g.rng.IntN(len(words))], n)
			var zb bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&zb, gzip.BestSpeed)
			zw.Write(g.cut(g.text, g.logUniform(1<<10, 64<<10)))
			zw.Close()
			data = zb.Bytes()
		case k < 88:
			name = fmt.Sprintf("%s/%s/%s_%d%s", textDirs[g.rng.IntN(len(textDirs))], words[g.rng.IntN(len(words))],
				words[g.rng.IntN(len(words))], n, textExts[g.rng.IntN(len(textExts))])
			data = g.cut(g.text, g.logUniform(256, 128<<10))
		default:
			name = fmt.Sprintf("%s/%s/lib%s-%d%s", binDirs[g.rng.IntN(len(binDirs))], words[g.rng.IntN(len(words))],
				words[g.rng.IntN(len(words))], n, binExts[g.rng.IntN(len(binExts))])
			data = g.cut(g.bin, g.logUniform(8<<10, 1<<20))
		}
		if err := add(name, data); err != nil {
			return 0, "", err
		}
	}
	if err := tw.Close(); err != nil {
		return 0, "", err
	}
	createdBy := fmt.Sprintf("COPY dir:%x in / # buildkit", sha256.Sum256([]byte(strconv.Itoa(i))))
	if i == plantDeletedLayer+1 {
		createdBy = "RUN /bin/sh -c rm /root/.config/app/deploy-token # buildkit"
	}
	return files, createdBy, nil
}

// plant writes the planted files of layer i.
func (g *gen) plant(tw *tar.Writer, i int, plants []plant, add func(string, []byte) error) error {
	filler := func(n int) string { return string(g.cut(g.text, n)) }
	for _, p := range plants {
		if p.layer != i {
			continue
		}
		var err error
		switch i {
		case plantRawLayer:
			err = add(p.path, []byte("APP_ENV=production\nDB_HOST=db.internal\nDB_USER=app\nDB_PASSWORD="+p.written+"\nLOG_LEVEL=info\n"))
		case plantBase64Layer:
			err = add(p.path, []byte("{\n  \"listen\": \":8080\",\n  \"upstream\": \"https://api.internal:8443\",\n"+
				"  \"upstream_headers\": {\"Authorization\": \"Basic "+p.written+"\"},\n  \"retries\": 3\n}\n"))
		case plantDeletedLayer:
			err = add(p.path, []byte(p.written+"\n"))
		case plantTarGzLayer:
			err = add("opt/vendor/bundle-1.4.2.tar.gz", tarGz(map[string][]byte{
				"bundle-1.4.2/README.md":   []byte(filler(6000)),
				"bundle-1.4.2/settings.py": []byte(filler(3000) + "\nSIGNING_KEY = \"" + p.written + "\"\n" + filler(2000)),
				"bundle-1.4.2/lib/core.py": []byte(filler(20000)),
			}))
		case plantHexLayer:
			bin := append([]byte(nil), g.cut(g.bin, 4<<20)...)
			copy(bin, "\x7fELF\x02\x01\x01")
			at := 5 << 19
			copy(bin[at:], "\x00license_check\x00"+p.written+"\x00")
			err = add(p.path, bin)
		}
		if err != nil {
			return err
		}
	}
	if i == plantDeletedLayer+1 {
		return writeEntry(tw, "root/.config/app/.wh.deploy-token", nil)
	}
	return nil
}

// mkdirs writes the directory entries of dir and its parents, once each.
func (g *gen) mkdirs(tw *tar.Writer, dir string) error {
	if dir == "." || dir == "/" || g.dirs[dir] {
		return nil
	}
	if err := g.mkdirs(tw, path.Dir(dir)); err != nil {
		return err
	}
	g.dirs[dir] = true
	return tw.WriteHeader(&tar.Header{Name: dir + "/", Mode: 0o755, ModTime: genTime, Typeflag: tar.TypeDir, Format: tar.FormatPAX})
}

// tarGz returns a .tar.gz of files, in name order.
func tarGz(files map[string][]byte) []byte {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	for _, n := range names {
		writeEntry(tw, n, files[n])
	}
	tw.Close()
	zw.Close()
	return b.Bytes()
}

package scan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/privyhq/privy/internal/scan/match"
)

// testdata/sarif-schema-2.1.0.json is the OASIS SARIF 2.1.0 schema
// (errata01, JSON Schema draft-04), copied verbatim from the Go module
// github.com/securego/gosec/v2@v2.30.0 (h1:67aF6LHa7SAL6QEc4es857GrXTT50gUqmrl0XPhtDx0=),
// file report/sarif/testdata/sarif-schema-2.1.0.json, sha256
// c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e. It is
// byte for byte the schema github.com/owenrumney/go-sarif/v3@v3.3.1 embeds
// in pkg/report/v210/sarif/schema.go.
const sarifSchemaID = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"

// TestSARIFSchema scans synthetic images that give findings of every kind,
// and checks that the SARIF reports of them conform to the SARIF 2.1.0
// schema, meet what GitHub code scanning asks beyond it, and hold no value.
func TestSARIFSchema(t *testing.T) {
	sch := compileSARIFSchema(t)
	images, known, values := sarifImages(t)
	found := map[string][]Finding{}
	for name, path := range images {
		found[name] = scanArchive(t, Options{Known: known}, path).Findings
	}
	checkSARIFCoverage(t, append(append([]Finding{}, found["mixed"]...), found["odd paths"]...))
	if len(found["clean"]) != 0 {
		t.Errorf("the clean image has %d findings, want none", len(found["clean"]))
	}

	for _, tt := range []struct {
		name   string
		images []string
	}{
		{"layers, config and history", []string{"mixed"}},
		{"odd paths", []string{"odd paths"}},
		{"no findings", []string{"clean"}},
		{"several images", []string{"mixed", "odd paths", "clean"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Findings gathered as `privy scan` gathers them: nil when
			// no image has any.
			var all []Finding
			for _, img := range tt.images {
				all = append(all, found[img]...)
			}
			var buf bytes.Buffer
			if err := WriteSARIF(&buf, "0.0.0-test", all); err != nil {
				t.Fatal(err)
			}
			checkSARIFSchema(t, sch, buf.Bytes())
			checkSARIFForGitHub(t, buf.Bytes(), len(all))
			for _, l := range leaks(buf.Bytes(), values) {
				t.Errorf("the SARIF report holds %s", l)
			}
		})
	}
}

// sarifImages writes three docker-archives: "mixed" with findings of every
// kind in its layers, config and history, "odd paths" with file names a
// URI must escape, and "clean" with none. It returns their paths, the known
// values to scan them for and every secret value in them, by name.
func sarifImages(t *testing.T) (images map[string]string, known []Known, values map[string]string) {
	t.Helper()
	values = map[string]string{}
	for _, n := range []string{"env", "label", "history", "present", "deleted", "netrc", "nested", "deep", "log",
		"space", "control", "reserved", "invalid-utf8", "in-path", "under-path"} {
		values[n] = randText(t, 20)
		known = append(known, Known{Name: "app/" + n, Value: []byte(values[n])})
	}
	v := values
	token := "ghp_" + randText(t, 36) // found by the github-token rule only
	values["github token"] = token

	var logLines bytes.Buffer
	for i := range 3 * maxPerFile {
		fmt.Fprintf(&logLines, "request %d ok, signed with %s\n", i, v["log"])
	}
	mixed, _ := synthArchive(t, func(c *v1.ConfigFile) {
		c.Config.Env = []string{"PATH=/bin", "DB_PASSWORD=" + v["env"]}
		c.Config.Labels = map[string]string{`org.example "auth"`: v["label"]}
		c.History[0].CreatedBy = "|1 TOKEN=" + v["history"] + " /bin/sh -c make"
	}, synthLayer{createdBy: "COPY rootfs /", entries: []synthEntry{
		sfile("etc/app.conf", []byte("key="+v["present"]+"\n")),
		sfile("app/key.txt", []byte(v["deleted"])),
		sfile("srv/deploy.env", []byte("gh: "+token+"\n")),
		sfile("root/.netrc", []byte("machine example.com login ci password "+v["netrc"]+"\n")),
		sfile("var/log/app.log", logLines.Bytes()),
		sfile("opt/bundle.tar.gz", tarGz(t, []synthEntry{
			sfile("conf/app settings ü.properties", []byte("db.pw="+v["nested"]+"\n")),
			sfile("nested/more.tar", tarBytes(t, []synthEntry{sfile("deep/creds.txt", []byte(v["deep"]))})),
		})),
	}}, synthLayer{createdBy: "RUN rm /app/key.txt", entries: []synthEntry{swhiteout("app", "key.txt")}})

	odd, _ := synthArchive(t, nil, synthLayer{createdBy: "COPY srv /srv", entries: []synthEntry{
		sfile("srv/my dir/ünïcødé 秘密.txt", []byte(v["space"])),
		sfile("srv/ctl\x01name\t\x7f.txt", []byte(v["control"])),
		sfile("srv/odd #?%[]&;=+,@!$'()*:~.txt", []byte(v["reserved"])),
		sfile("srv/bad\xff\xfe.txt", []byte(v["invalid-utf8"])),
		sfile("srv/key-"+v["in-path"]+"/cred.txt", []byte(v["under-path"])),
	}})
	// The image's name, its ref, goes into every artifact URI.
	dir := filepath.Join(t.TempDir(), "images with spaces ✓")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(odd, filepath.Join(dir, "odd #1.tar")); err != nil {
		t.Fatal(err)
	}

	clean, _ := synthArchive(t, nil, synthLayer{createdBy: "COPY", entries: []synthEntry{
		sfile("etc/hostname", []byte("clean\n")),
	}})
	images = map[string]string{"mixed": mixed, "odd paths": filepath.Join(dir, "odd #1.tar"), "clean": clean}
	return images, known, values
}

// checkSARIFCoverage fails the test if the findings lack a kind the SARIF
// report must be checked on, so that the images cannot quietly stop giving
// them.
func checkSARIFCoverage(t *testing.T, fs []Finding) {
	t.Helper()
	paths := func(f Finding) []string { return append([]string{f.Path}, f.Inner...) }
	anyPath := func(f Finding, ok func(string) bool) bool {
		for _, p := range paths(f) {
			if ok(p) {
				return true
			}
		}
		return false
	}
	kinds := []struct {
		name string
		is   func(Finding) bool
	}{
		{"known value in a present file", func(f Finding) bool { return f.Kind == "known" && f.Where == "layer" && f.Present }},
		{"known value in a deleted file", func(f Finding) bool { return f.Kind == "known" && f.Where == "layer" && !f.Present }},
		{"known value in Env", func(f Finding) bool { return f.Kind == "known" && strings.HasPrefix(f.Field, "Env[") }},
		{"known value in Labels", func(f Finding) bool { return f.Kind == "known" && strings.HasPrefix(f.Field, "Labels[") }},
		{"known value in history", func(f Finding) bool { return f.Kind == "known" && f.Where == "history" }},
		{"rule in a layer", func(f Finding) bool { return f.Kind == "rule" && f.Where == "layer" }},
		{"rule in the config", func(f Finding) bool { return f.Kind == "rule" && f.Where != "layer" }},
		{"file rule", func(f Finding) bool { return f.Kind == "file" }},
		{"nested archive", func(f Finding) bool { return len(f.Inner) == 1 }},
		{"archive in a nested archive", func(f Finding) bool { return len(f.Inner) == 2 }},
		{"More > 0", func(f Finding) bool { return f.More > 0 }},
		{"no line", func(f Finding) bool { return f.Line == 0 }},
		{"path with a space", func(f Finding) bool { return anyPath(f, func(p string) bool { return strings.Contains(p, " ") }) }},
		{"path with non-ASCII letters", func(f Finding) bool {
			return anyPath(f, func(p string) bool { return strings.Contains(p, "秘密") })
		}},
		{"path with control characters", func(f Finding) bool {
			return anyPath(f, func(p string) bool { return strings.Contains(p, `\x01`) })
		}},
		{"path with URI delimiters", func(f Finding) bool {
			return anyPath(f, func(p string) bool { return strings.Contains(p, "#?%") })
		}},
		{"path not in UTF-8", func(f Finding) bool { return anyPath(f, func(p string) bool { return !utf8.ValidString(p) }) }},
		{"path that held a value", func(f Finding) bool {
			return anyPath(f, func(p string) bool { return strings.Contains(p, "****") })
		}},
	}
	for _, k := range kinds {
		if !slices.ContainsFunc(fs, k.is) {
			t.Errorf("no finding of kind %q: the test images no longer give one", k.name)
		}
	}
}

// compileSARIFSchema compiles testdata/sarif-schema-2.1.0.json, with
// formats asserted: the schema says an artifact URI is a uri-reference.
func compileSARIFSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "sarif-schema-2.1.0.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("decoding the SARIF schema: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(sarifSchemaID, doc); err != nil {
		t.Fatalf("adding the SARIF schema: %v", err)
	}
	sch, err := c.Compile(sarifSchemaID)
	if err != nil {
		t.Fatalf("compiling the SARIF schema: %v", err)
	}
	return sch
}

// checkSARIFSchema validates a report against the schema and, if it does
// not conform, shows the validator's detailed output, which names each
// failing instance location and keyword.
func checkSARIFSchema(t *testing.T, sch *jsonschema.Schema, report []byte) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(report))
	if err != nil {
		t.Fatalf("the SARIF report is not JSON: %v", err)
	}
	err = sch.Validate(inst)
	var ve *jsonschema.ValidationError
	switch {
	case errors.As(err, &ve):
		detailed, _ := json.MarshalIndent(ve.DetailedOutput(), "", "  ")
		t.Errorf("the SARIF report does not conform to the SARIF 2.1.0 schema:\n%v\ndetailed output:\n%s", ve, detailed)
	case err != nil:
		t.Errorf("validating the SARIF report: %v", err)
	}
}

// checkSARIFForGitHub checks what GitHub code scanning requires of an
// upload beyond the schema, and that every finding is one result.
func checkSARIFForGitHub(t *testing.T, report []byte, findings int) {
	t.Helper()
	var log struct {
		Schema  string `json:"$schema"`
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Name  string `json:"name"`
					Rules []struct {
						ID string `json:"id"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID  string `json:"ruleId"`
				Message struct {
					Text string `json:"text"`
				} `json:"message"`
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct {
							URI string `json:"uri"`
						} `json:"artifactLocation"`
					} `json:"physicalLocation"`
				} `json:"locations"`
				PartialFingerprints map[string]string `json:"partialFingerprints"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(report, &log); err != nil {
		t.Fatalf("the SARIF report is not JSON: %v", err)
	}
	if log.Version != "2.1.0" {
		t.Errorf("got version %q, want 2.1.0", log.Version)
	}
	if log.Schema == "" {
		t.Error("the SARIF report has no $schema")
	}
	if len(log.Runs) != 1 {
		t.Fatalf("got %d runs, want 1", len(log.Runs))
	}
	run := log.Runs[0]
	if run.Tool.Driver.Name != "privy" {
		t.Errorf("got tool.driver.name %q, want privy", run.Tool.Driver.Name)
	}
	rules := map[string]bool{}
	for _, r := range run.Tool.Driver.Rules {
		if rules[r.ID] {
			t.Errorf("rule %q is declared twice in tool.driver.rules", r.ID)
		}
		rules[r.ID] = true
	}
	if len(run.Results) != findings {
		t.Errorf("got %d results, want one per finding, %d", len(run.Results), findings)
	}
	for i, r := range run.Results {
		if !rules[r.RuleID] {
			t.Errorf("result %d: ruleId %q is not declared in tool.driver.rules", i, r.RuleID)
		}
		if r.Message.Text == "" {
			t.Errorf("result %d (%s): no message.text", i, r.RuleID)
		}
		if len(r.Locations) == 0 || r.Locations[0].PhysicalLocation.ArtifactLocation.URI == "" {
			t.Errorf("result %d (%s): no location with physicalLocation.artifactLocation.uri", i, r.RuleID)
		}
		for _, l := range r.Locations {
			if uri := l.PhysicalLocation.ArtifactLocation.URI; !isURIReference(uri) {
				t.Errorf("result %d (%s): artifact URI %q is not an RFC 3986 URI reference", i, r.RuleID, uri)
			}
		}
		if len(r.PartialFingerprints) == 0 {
			t.Errorf("result %d (%s): no partialFingerprints", i, r.RuleID)
		}
		for k, fp := range r.PartialFingerprints {
			if fp == "" {
				t.Errorf("result %d (%s): partialFingerprints[%q] is empty", i, r.RuleID, k)
			}
		}
	}
}

// isURIReference reports whether s is made of the characters RFC 3986
// allows in a URI reference, with '%' only in escapes. The validator's
// uri-reference format is looser: it takes what net/url parses, raw
// spaces and non-ASCII letters included.
func isURIReference(s string) bool {
	const allowed = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;="
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return false
			}
			i += 2
		case !strings.ContainsRune(allowed, rune(s[i])):
			return false
		}
	}
	return true
}

func isHex(c byte) bool { return strings.IndexByte("0123456789abcdefABCDEF", c) >= 0 }

// leaks describes each value, in any of the forms the scanner looks for,
// and each 8 bytes of a value, that report holds.
func leaks(report []byte, values map[string]string) []string {
	var out []string
	for name, v := range values {
		for _, f := range match.Forms([]byte(v)) {
			if bytes.Contains(report, f.Bytes) {
				out = append(out, fmt.Sprintf("value %s (%s form)", name, f.Encoding))
			}
		}
		for j := 0; j+8 <= len(v); j++ {
			if bytes.Contains(report, []byte(v[j:j+8])) {
				out = append(out, fmt.Sprintf("bytes %d..%d of value %s", j, j+8, name))
				break
			}
		}
	}
	return out
}

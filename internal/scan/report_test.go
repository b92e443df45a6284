package scan

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func sampleFindings() []Finding {
	return []Finding{
		{Image: "app:1", Kind: "known", Secret: "app/web/db-password", Encoding: "base64", Where: "layer",
			Layer: 2, LayerDigest: "sha256:0123456789abcdef0123", CreatedBy: "RUN cat /run/secrets/x > /leak",
			Path: "leak", Line: 1, Present: false, Excerpt: "VHIw…(16)"},
		{Image: "app:1", Kind: "rule", Rule: "aws-access-key-id", Where: "config", Field: "Env[1]", Layer: -1},
		{Image: "app:1", Kind: "file", Rule: "ssh-private-key", Where: "layer", Layer: 1, Path: "root/.ssh/id_rsa",
			Inner: []string{"backup.tar.gz"}, Present: true},
	}
}

func TestWriteSARIF(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteSARIF(&buf, "0.1.0", sampleFindings()); err != nil {
		t.Fatal(err)
	}
	var log struct {
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
				RuleID    string                `json:"ruleId"`
				Message   struct{ Text string } `json:"message"`
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct{ URI string } `json:"artifactLocation"`
					} `json:"physicalLocation"`
				} `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(buf.Bytes(), &log); err != nil {
		t.Fatalf("SARIF is not JSON: %v", err)
	}
	if log.Version != "2.1.0" || len(log.Runs) != 1 || log.Runs[0].Tool.Driver.Name != "privy" {
		t.Fatalf("got version %q, %d runs", log.Version, len(log.Runs))
	}
	run := log.Runs[0]
	if got, want := len(run.Results), 3; got != want {
		t.Fatalf("got %d results, want %d", got, want)
	}
	rules := map[string]bool{}
	for _, r := range run.Tool.Driver.Rules {
		rules[r.ID] = true
	}
	for _, r := range run.Results {
		if !rules[r.RuleID] {
			t.Errorf("result rule %q is not declared in tool.driver.rules", r.RuleID)
		}
		if r.Message.Text == "" || len(r.Locations) != 1 || r.Locations[0].PhysicalLocation.ArtifactLocation.URI == "" {
			t.Errorf("result %q lacks a message or location", r.RuleID)
		}
	}
	if uri := run.Results[0].Locations[0].PhysicalLocation.ArtifactLocation.URI; uri != "image/app_1/layer/2/leak" {
		t.Errorf("got uri %q, want image/app_1/layer/2/leak", uri)
	}
}

func TestWriteText(t *testing.T) {
	var buf bytes.Buffer
	fs := sampleFindings()
	Sort(fs)
	if err := WriteText(&buf, fs); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"secret app/web/db-password (base64-encoded)",
		"layer 2 (0123456789ab) /leak:1 — deleted later, still in the layer",
		"/root/.ssh/id_rsa!/backup.tar.gz — present in the final image",
		"rule aws-access-key-id\n  in Env[1]",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "Env[1]") > strings.Index(out, "/leak") {
		t.Errorf("config findings should come before layer findings:\n%s", out)
	}
}

func TestWriteJSONEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"findings": []`) {
		t.Errorf("got %s, want an empty findings list", buf.String())
	}
}

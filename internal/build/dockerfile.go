package build

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"sort"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Mount is one secret or ssh mount a Dockerfile asks for.
type Mount struct {
	ID       string
	Required bool
	Target   string // where the secret appears in the step, for messages
	Stage    string // the stage's name, or its index
	Line     int    // line of the RUN instruction
}

// Mounts are the secret and ssh ids a Dockerfile uses, each once, in order
// of first use; an id is required if any use requires it.
type Mounts struct {
	Secrets []Mount
	SSH     []Mount
	// Runs are the RUN instructions that mount secrets, in order.
	Runs []Step
}

// Step is one RUN instruction that mounts secrets.
type Step struct {
	Stage   int // index of its stage
	Line    int // its first line
	Secrets []string
}

// ParseDockerfile reads the Dockerfile at file with BuildKit's own parser
// and collects every secret and ssh mount of every stage.
func ParseDockerfile(file string) (*Mounts, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading Dockerfile: %w", err)
	}
	return parseDockerfile(file, b)
}

func parseDockerfile(name string, b []byte) (*Mounts, error) {
	res, err := parser.Parse(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", name, err)
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", name, err)
	}
	ms := &Mounts{}
	secrets := map[string]int{}
	ssh := map[string]int{}
	add := func(list *[]Mount, seen map[string]int, m Mount) {
		if i, ok := seen[m.ID]; ok {
			(*list)[i].Required = (*list)[i].Required || m.Required
			return
		}
		seen[m.ID] = len(*list)
		*list = append(*list, m)
	}
	for si, st := range stages {
		stage := st.Name
		if stage == "" {
			stage = fmt.Sprint(si)
		}
		for _, c := range st.Commands {
			rc, ok := c.(*instructions.RunCommand)
			if !ok {
				continue
			}
			// Mount options may use ARGs; privy resolves ids as written.
			if err := rc.Expand(func(w string) (string, error) { return w, nil }); err != nil {
				return nil, fmt.Errorf("parsing %s: %w", name, err)
			}
			line := 0
			if loc := rc.Location(); len(loc) > 0 {
				line = loc[0].Start.Line
			}
			run := Step{Stage: si, Line: line}
			for _, m := range instructions.GetMounts(rc) {
				switch m.Type {
				case instructions.MountTypeSecret:
					// As BuildKit's convert_secrets.go: source= wins over id=,
					// and with neither the id is the target's base name.
					id := m.CacheID
					if m.Source != "" {
						id = m.Source
					}
					if id == "" {
						if m.Target == "" {
							return nil, fmt.Errorf("parsing %s: line %d: a secret mount needs an id (or a target)", name, line)
						}
						id = path.Base(m.Target)
					}
					target := m.Target
					if target == "" && m.Env == nil {
						target = "/run/secrets/" + path.Base(id)
					}
					add(&ms.Secrets, secrets, Mount{ID: id, Required: m.Required, Target: target, Stage: stage, Line: line})
					run.Secrets = append(run.Secrets, id)
				case instructions.MountTypeSSH:
					id := m.CacheID
					if id == "" {
						id = "default"
					}
					add(&ms.SSH, ssh, Mount{ID: id, Required: m.Required, Target: m.Target, Stage: stage, Line: line})
				}
			}
			if len(run.Secrets) > 0 {
				ms.Runs = append(ms.Runs, run)
			}
		}
	}
	return ms, nil
}

// ids returns the ids of ms, sorted.
func ids(ms []Mount) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	sort.Strings(out)
	return out
}

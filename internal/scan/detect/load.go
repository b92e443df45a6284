package detect

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxRulesFile is the largest rules file, in bytes, that LoadRules reads.
const MaxRulesFile = 1 << 20

// LoadError reports what is wrong in a rules file and on which line.
type LoadError struct {
	Line int    // 1-based line of the offending node; 0 if not known
	Msg  string // what is wrong, naming the rule and field
	Err  error  // the underlying error, such as a regexp syntax error, or nil
}

// Error returns a message such as
// `line 7: rule "acme-key": regex: error parsing regexp: missing closing ): ...`.
func (e *LoadError) Error() string {
	if e.Line <= 0 {
		return e.Msg
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
}

// Unwrap returns the underlying error, if any.
func (e *LoadError) Unwrap() error { return e.Err }

func loadErrorf(n *yaml.Node, format string, args ...any) *LoadError {
	return &LoadError{Line: n.Line, Msg: fmt.Sprintf(format, args...)}
}

// LoadRules reads user rules in the YAML format described in the package
// documentation. Keywords are lower-cased. It reports the first problem as
// a *LoadError naming its line: a bad regex, a missing field, a keyword that
// is too short, an unknown field, or an id used twice or by a built-in rule.
// An empty file holds no rules.
func LoadRules(r io.Reader) ([]*Rule, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxRulesFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading rules: %w", err)
	}
	if len(data) > MaxRulesFile {
		return nil, &LoadError{Msg: fmt.Sprintf("rules file is larger than %d bytes", MaxRulesFile)}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, syntaxError(err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return nil, loadErrorf(&next, "more than one YAML document")
	} else if !errors.Is(err, io.EOF) {
		return nil, syntaxError(err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	root := deref(doc.Content[0])
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, loadErrorf(root, "want a mapping with a rules list at the top")
	}
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := deref(root.Content[i]), deref(root.Content[i+1])
		if k.Value != "rules" {
			return nil, loadErrorf(k, "unknown field %q (want rules)", clip(k.Value))
		}
		if list != nil {
			return nil, loadErrorf(k, "rules given twice")
		}
		list = v
	}
	if list == nil || list.Kind == yaml.ScalarNode && list.Tag == "!!null" {
		return nil, nil
	}
	if list.Kind != yaml.SequenceNode {
		return nil, loadErrorf(list, "rules: want a list of rules")
	}

	isBuiltin := make(map[string]bool)
	for _, b := range builtin() {
		isBuiltin[b.ID] = true
	}
	firstLine := make(map[string]int) // id -> line it was first defined on
	var rules []*Rule
	for _, item := range list.Content {
		rule, idNode, err := parseRule(deref(item))
		if err != nil {
			return nil, err
		}
		if isBuiltin[rule.ID] {
			return nil, loadErrorf(idNode, "duplicate id %q: a built-in rule has this id", rule.ID)
		}
		if line, dup := firstLine[rule.ID]; dup {
			return nil, loadErrorf(idNode, "duplicate id %q: already defined on line %d", rule.ID, line)
		}
		firstLine[rule.ID] = idNode.Line
		rules = append(rules, rule)
	}
	return rules, nil
}

// syntaxError turns a YAML parser error, such as "yaml: line 3: did not
// find expected key", into a *LoadError with that line.
func syntaxError(err error) *LoadError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ": "); ok {
			if line, cerr := strconv.Atoi(n); cerr == nil {
				return &LoadError{Line: line, Msg: "bad YAML: " + after, Err: err}
			}
		}
	}
	return &LoadError{Msg: "bad YAML: " + msg, Err: err}
}

// deref follows a YAML alias to the node it names.
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// parseRule reads one rule and returns it with the node of its id.
func parseRule(n *yaml.Node) (*Rule, *yaml.Node, *LoadError) {
	if n.Kind != yaml.MappingNode {
		return nil, nil, loadErrorf(n, "want a rule (a mapping with id, keywords and regex)")
	}
	r := &Rule{}
	seen := make(map[string]bool)
	fields := make(map[string]*yaml.Node) // field name -> value node
	// The id names the rule in every later message, so read it first.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k, v := deref(n.Content[i]), deref(n.Content[i+1]); k.Value == "id" {
			if v.Kind != yaml.ScalarNode {
				return nil, nil, loadErrorf(v, "id: want a string")
			}
			r.ID = v.Value
			fields["id"] = v
		}
	}
	idNode := fields["id"]
	if idNode == nil {
		return nil, nil, loadErrorf(n, "rule without an id")
	}
	where := fmt.Sprintf("rule %q", clip(r.ID))
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if seen[k.Value] {
			return nil, nil, loadErrorf(k, "%s: %s given twice", where, clip(k.Value))
		}
		seen[k.Value] = true
		fields[k.Value] = v
		var err *LoadError
		switch k.Value {
		case "id":
		case "description":
			r.Description, err = scalar(v, where, "description")
		case "keywords":
			r.Keywords, err = stringList(v, where, "keywords")
			for j := range r.Keywords {
				r.Keywords[j] = strings.ToLower(r.Keywords[j])
			}
		case "regex":
			r.Pattern, err = compile(v, where, "regex")
		case "secret_group":
			err = decode(v, &r.SecretGroup, where, "secret_group", "an integer")
		case "min_entropy":
			err = decode(v, &r.MinEntropy, where, "min_entropy", "a number")
		case "allow":
			if v.Kind != yaml.SequenceNode {
				return nil, nil, loadErrorf(v, "%s: allow: want a list of regexes", where)
			}
			for _, a := range v.Content {
				re, err := compile(deref(a), where, "allow")
				if err != nil {
					return nil, nil, err
				}
				r.Allow = append(r.Allow, re)
			}
		default:
			err = loadErrorf(k, "%s: unknown field %q (want id, description, keywords, regex, secret_group, min_entropy or allow)", where, clip(k.Value))
		}
		if err != nil {
			return nil, nil, err
		}
	}
	if fields["regex"] == nil {
		return nil, nil, loadErrorf(n, "%s: missing regex", where)
	}
	if len(r.Keywords) == 0 {
		at := n
		if fields["keywords"] != nil {
			at = fields["keywords"]
		}
		return nil, nil, loadErrorf(at, "%s: missing keyword: the scanner runs a rule only around its keywords", where)
	}
	if field, err := r.validate(); err != nil {
		at := fields[field]
		if at == nil {
			at = n
		}
		return nil, nil, &LoadError{Line: at.Line, Msg: where + ": " + err.Error(), Err: err}
	}
	return r, idNode, nil
}

func scalar(v *yaml.Node, where, field string) (string, *LoadError) {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		return "", loadErrorf(v, "%s: %s: want a string", where, field)
	}
	return v.Value, nil
}

// strings_ reads a list of strings.
func stringList(v *yaml.Node, where, field string) ([]string, *LoadError) {
	if v.Kind != yaml.SequenceNode {
		return nil, loadErrorf(v, "%s: %s: want a list of strings", where, field)
	}
	out := make([]string, 0, len(v.Content))
	for _, e := range v.Content {
		s, err := scalar(deref(e), where, field)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func compile(v *yaml.Node, where, field string) (*regexp.Regexp, *LoadError) {
	s, lerr := scalar(v, where, field)
	if lerr != nil {
		return nil, lerr
	}
	re, err := regexp.Compile(s)
	if err != nil {
		return nil, &LoadError{Line: v.Line, Msg: fmt.Sprintf("%s: bad %s: %v", where, field, err), Err: err}
	}
	return re, nil
}

func decode(v *yaml.Node, dst any, where, field, want string) *LoadError {
	if v.Kind != yaml.ScalarNode || v.Decode(dst) != nil {
		return loadErrorf(v, "%s: %s: want %s", where, field, want)
	}
	return nil
}

package manifest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/deliver"
)

// Run is the run: section: what each kind of container receives at run
// time.
type Run struct {
	// Profiles are sorted by name. A profile's Files are sorted by name;
	// its Prefixes, Repos and their Files keep the manifest's order. The
	// profile-wide mode, uid and gid are filled into the Owner of every
	// file, prefix and repo that sets none of its own.
	Profiles []api.Profile
}

// Keys of the mappings of the run: section, for messages.
const (
	profileKeys = "files, prefixes, repos, host_private, on_rotate, post, mode, uid, gid"
	fileKeys    = "secret, mode, uid, gid"
	prefixKeys  = "prefix, dir, mode, uid, gid"
	repoKeys    = "url, ref, dir, files, ssh_key, known_hosts, username, password, age_identity, mode, uid, gid"
	srcKeys     = "src, dest, mode"
)

// signals are the names on_rotate accepts, without "SIG": those that ask a
// program to reload or to stop, not those that stop it without asking.
var signals = []string{"HUP", "INT", "QUIT", "TERM", "USR1", "USR2", "WINCH", "ALRM", "CONT"}

// maxID is the largest uid or gid: Linux ids are 32 bits and (uid_t)-1 is
// reserved, so the range is kept to what every tool reads as positive.
const maxID = 1<<31 - 1

func (p *parser) run(v *yaml.Node) (*Run, error) {
	if isNull(v) {
		return nil, nil
	}
	if v.Kind != yaml.MappingNode {
		return nil, p.errorf(v, "run: want a mapping with profiles, got %s", describe(v))
	}
	r := &Run{}
	err := p.mapping(v, "in run", func(k, v *yaml.Node) error {
		if k.Value != "profiles" {
			return p.unknownKey(k, "in run", "profiles")
		}
		return p.profiles(v, r)
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(r.Profiles, func(a, b api.Profile) int { return strings.Compare(a.Name, b.Name) })
	return r, nil
}

func (p *parser) profiles(v *yaml.Node, r *Run) error {
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.MappingNode {
		return p.errorf(v, "run.profiles: want a mapping from profile name to profile, like web: {files: {db_password: app/web/db-password}}, got %s", describe(v))
	}
	return p.mapping(v, "in run.profiles", func(k, v *yaml.Node) error {
		prof, err := p.profile(k, v)
		if err != nil {
			return err
		}
		r.Profiles = append(r.Profiles, prof)
		return nil
	})
}

// validProfileName reports whether s matches [a-z0-9][a-z0-9._-]{0,62}:
// a profile's name goes into URLs and Docker volume names.
func validProfileName(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '.' || s[0] == '_' || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// profile reads the profile named by key k.
func (p *parser) profile(k, v *yaml.Node) (api.Profile, error) {
	prof := api.Profile{Name: k.Value}
	if !validProfileName(k.Value) {
		return prof, p.errorf(k, "profile name %s: use 1 to 63 lowercase letters, digits, '.', '_' and '-', starting with a letter or digit, like web or db-primary", quote(k.Value))
	}
	what := "profile " + quote(k.Value)
	if !isNull(v) && v.Kind != yaml.MappingNode {
		return prof, p.errorf(v, "%s: want a mapping with files, prefixes, repos or host_private, got %s", what, describe(v))
	}
	var def api.Owner // the profile-wide mode, uid and gid
	var sp spots
	err := p.mapping(v, "in "+what, func(k, v *yaml.Node) error {
		var err error
		switch k.Value {
		case "files":
			prof.Files, err = p.profileFiles(v, what, &sp)
		case "prefixes":
			prof.Prefixes, err = p.prefixes(v, what, &sp)
		case "repos":
			prof.Repos, err = p.repos(v, what, &sp)
		case "host_private":
			prof.HostPrivate, err = p.boolean(v, what, "host_private")
		case "on_rotate":
			prof.OnRotate, err = p.signal(v, what)
		case "post":
			prof.Post, err = p.post(v, what)
		case "mode", "uid", "gid":
			err = p.owner(k, v, what, &def)
		default:
			err = p.unknownKey(k, "in "+what, profileKeys)
		}
		return err
	})
	if err != nil {
		return prof, err
	}
	if len(prof.Files) == 0 && len(prof.Prefixes) == 0 && len(prof.Repos) == 0 && !prof.HostPrivate {
		return prof, p.errorf(k, "%s delivers nothing; give at least one of files, prefixes, repos or host_private: true", what)
	}
	if err := sp.check(p, what); err != nil {
		return prof, err
	}
	slices.SortFunc(prof.Files, func(a, b api.ProfileFile) int { return strings.Compare(a.Name, b.Name) })
	for i := range prof.Files {
		fill(&prof.Files[i].Owner, def)
	}
	for i := range prof.Prefixes {
		fill(&prof.Prefixes[i].Owner, def)
	}
	for i := range prof.Repos {
		fill(&prof.Repos[i].Owner, def)
	}
	return prof, nil
}

// fill sets each field of o that is unset to that of def. Ids are copied so
// that no two entries share a pointer.
func fill(o *api.Owner, def api.Owner) {
	if o.Mode == 0 {
		o.Mode = def.Mode
	}
	if o.UID == nil && def.UID != nil {
		id := *def.UID
		o.UID = &id
	}
	if o.GID == nil && def.GID != nil {
		id := *def.GID
		o.GID = &id
	}
}

// owner reads the mode, uid or gid (the key k) of an entry into o.
func (p *parser) owner(k, v *yaml.Node, what string, o *api.Owner) error {
	var err error
	switch k.Value {
	case "mode":
		o.Mode, err = p.mode(v, what)
	case "uid":
		var id int
		id, err = p.numericID(v, what, "uid")
		o.UID = &id
	case "gid":
		var id int
		id, err = p.numericID(v, what, "gid")
		o.GID = &id
	}
	return err
}

func (p *parser) profileFiles(v *yaml.Node, what string, sp *spots) ([]api.ProfileFile, error) {
	if isNull(v) {
		return nil, nil
	}
	if v.Kind != yaml.MappingNode {
		return nil, p.errorf(v, "%s: files: want a mapping from file name to store path, like db_password: app/web/db-password, got %s", what, describe(v))
	}
	files := make([]api.ProfileFile, 0, len(v.Content)/2)
	err := p.mapping(v, "in "+what+" files", func(k, v *yaml.Node) error {
		f, err := p.profileFile(k, v, what)
		if err != nil {
			return err
		}
		files = append(files, f)
		sp.add(f.Name, false, k)
		return nil
	})
	return files, err
}

// profileFile reads the file whose name is the key k: a store path, or a
// mapping with secret and, optionally, mode, uid and gid.
func (p *parser) profileFile(k, v *yaml.Node, what string) (api.ProfileFile, error) {
	f := api.ProfileFile{Name: k.Value}
	if err := p.checkName(k, k.Value, what); err != nil {
		return f, err
	}
	what += " file " + quote(k.Value)
	var err error
	switch {
	case isNull(v):
		return f, p.errorf(v, "%s has no secret; write a store path, or a mapping like {secret: app/db, mode: \"0400\"}", what)
	case v.Kind == yaml.ScalarNode:
		f.Secret, err = p.storePath(v, what)
		return f, err
	case v.Kind != yaml.MappingNode:
		return f, p.errorf(v, "%s: want a store path, or a mapping with secret and optionally mode, uid, gid, got %s", what, describe(v))
	}
	err = p.mapping(v, "in "+what, func(k, v *yaml.Node) error {
		switch k.Value {
		case "secret":
			var err error
			f.Secret, err = p.storePath(v, what)
			return err
		case "mode", "uid", "gid":
			return p.owner(k, v, what, &f.Owner)
		}
		return p.unknownKey(k, "in "+what, fileKeys)
	})
	if err == nil && f.Secret == "" {
		err = p.errorf(v, "%s has no secret; give secret: <store path>", what)
	}
	return f, err
}

func (p *parser) prefixes(v *yaml.Node, what string, sp *spots) ([]api.ProfilePrefix, error) {
	if isNull(v) {
		return nil, nil
	}
	if v.Kind != yaml.SequenceNode {
		return nil, p.errorf(v, "%s: prefixes: want a list like [{prefix: app/web/certs/, dir: certs}], got %s", what, describe(v))
	}
	prefixes := make([]api.ProfilePrefix, 0, len(v.Content))
	for i, e := range v.Content {
		e = deref(e)
		pw := fmt.Sprintf("%s prefix #%d", what, i+1)
		var pr api.ProfilePrefix
		var err error
		switch e.Kind {
		case yaml.ScalarNode:
			pr.Prefix, err = p.prefix(e, pw)
		case yaml.MappingNode:
			var dir *yaml.Node
			err = p.mapping(e, "in "+pw, func(k, v *yaml.Node) error {
				var err error
				switch k.Value {
				case "prefix":
					pr.Prefix, err = p.prefix(v, pw)
				case "dir":
					pr.Dir, err = p.mountPath(v, pw, "dir")
					dir = v
				case "mode", "uid", "gid":
					err = p.owner(k, v, pw, &pr.Owner)
				default:
					err = p.unknownKey(k, "in "+pw, prefixKeys)
				}
				return err
			})
			if err == nil && pr.Prefix == "" {
				err = p.errorf(e, "%s has no prefix; give prefix: <store path ending in '/'>", pw)
			}
			if dir != nil {
				sp.add(pr.Dir, true, dir)
			}
		default:
			err = p.errorf(e, "%s: want a mapping with prefix and optionally dir, mode, uid, gid, got %s", pw, describe(e))
		}
		if err != nil {
			return nil, err
		}
		prefixes = append(prefixes, pr)
	}
	return prefixes, nil
}

// prefix reads a store path that ends in '/'.
func (p *parser) prefix(n *yaml.Node, what string) (string, error) {
	s, err := p.str(n, what, "prefix")
	switch {
	case err != nil:
		return "", err
	case s == "":
		return "", p.errorf(n, "%s: prefix is empty; write a store path ending in '/', like app/web/", what)
	case !strings.HasSuffix(s, "/"):
		return "", p.errorf(n, "%s: prefix %s does not end in '/'; write %s", what, quote(s), quote(s+"/"))
	}
	if err := p.checkStorePath(n, strings.TrimSuffix(s, "/"), what, "prefix "+quote(s)); err != nil {
		return "", err
	}
	return s, nil
}

// mountPath reads a relative path in the mount.
func (p *parser) mountPath(n *yaml.Node, what, field string) (string, error) {
	s, err := p.str(n, what, field)
	if err != nil {
		return "", err
	}
	return s, p.checkName(n, s, what+": "+field)
}

// checkName checks s, found at n, by the rule for names in a mount.
func (p *parser) checkName(n *yaml.Node, s, what string) error {
	err := deliver.CheckName(s)
	if err == nil {
		return nil
	}
	// deliver quotes the whole name; clip it as every message here does.
	msg := strings.Replace(err.Error(), strconv.Quote(s), quote(s), 1)
	return &Error{File: p.name, Line: n.Line, Col: n.Column, Msg: what + ": " + msg, err: err}
}

// mode reads a file mode: a quoted string of octal digits. A YAML number
// is refused, whatever its base: a plain 400 is four hundred and 0400 is
// 256, and the schema cannot tell either from the other.
func (p *parser) mode(n *yaml.Node, what string) (uint32, error) {
	const want = `write 1 to 4 octal digits in quotes, like mode: "0400" or mode: "0640"`
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float") {
		digits := strings.TrimLeft(strings.TrimPrefix(n.Value, "0o"), "0")
		if len(n.Value) <= 8 && digits != "" && len(digits) <= 3 && !strings.ContainsFunc(digits, notOctal) {
			return 0, p.errorf(n, `%s: mode: got the number %s; YAML does not read modes as octal, so quote it: mode: "%04s"`, what, n.Value, digits)
		}
		return 0, p.errorf(n, "%s: mode: got the number %s; %s", what, quote(n.Value), want)
	}
	s, err := p.str(n, what, "mode")
	if err != nil {
		return 0, err
	}
	if s == "" || len(s) > 4 || strings.ContainsFunc(s, notOctal) {
		return 0, p.errorf(n, "%s: mode %s is not an octal file mode; %s", what, quote(s), want)
	}
	m, _ := strconv.ParseUint(s, 8, 32)
	switch {
	case m > 0o777:
		return 0, p.errorf(n, `%s: mode %s sets the setuid, setgid or sticky bit, which privy does not allow; give permission bits only, at most "0777"`, what, quote(s))
	case m == 0:
		return 0, p.errorf(n, `%s: mode %s gives no permission (and 0 stands for the default, "0400"); give the permission bits, like "0400"`, what, quote(s))
	}
	return uint32(m), nil
}

func notOctal(r rune) bool { return r < '0' || r > '7' }

// numericID reads a uid or gid (field): an integer from 0 to maxID.
func (p *parser) numericID(n *yaml.Node, what, field string) (int, error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		var id int64
		if err := n.Decode(&id); err == nil && 0 <= id && id <= maxID {
			return int(id), nil
		}
		return 0, p.errorf(n, "%s: %s %s is out of range; give a number from 0 to %d", what, field, quote(n.Value), maxID)
	}
	hint := ""
	switch {
	case n.Kind != yaml.ScalarNode:
	case n.Tag == "!!float":
		hint = "; write a whole number"
	case n.Tag == "!!str" && n.Value != "" && !strings.ContainsFunc(n.Value, func(r rune) bool { return r < '0' || r > '9' }):
		hint = "; write it without quotes"
	}
	return 0, p.errorf(n, "%s: %s: want a number from 0 to %d, got %s%s", what, field, maxID, describe(n), hint)
}

func (p *parser) boolean(n *yaml.Node, what, field string) (bool, error) {
	var b bool
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" && n.Decode(&b) == nil {
		return b, nil
	}
	return false, p.errorf(n, "%s: %s: want true or false, got %s", what, field, describe(n))
}

// signal reads the name of the signal on_rotate sends, with or without
// "SIG", and returns it with "SIG": "HUP" becomes "SIGHUP".
func (p *parser) signal(n *yaml.Node, what string) (string, error) {
	s, err := p.str(n, what, "on_rotate")
	if err != nil {
		return "", err
	}
	if name := strings.TrimPrefix(s, "SIG"); slices.Contains(signals, name) {
		return "SIG" + name, nil
	}
	hint := ""
	if name := strings.TrimPrefix(strings.ToUpper(s), "SIG"); slices.Contains(signals, name) {
		hint = "; write it in capitals: SIG" + name
	}
	return "", p.errorf(n, "%s: on_rotate: unknown signal %s%s; use one of SIG%s", what, quote(s), hint, strings.Join(signals, ", SIG"))
}

// post reads a command: a program and its arguments, not run by a shell.
func (p *parser) post(n *yaml.Node, what string) ([]string, error) {
	switch {
	case n.Kind != yaml.SequenceNode:
		return nil, p.errorf(n, `%s: post: want a command as a list of strings, like ["/bin/sh", "-c", "nginx -t"], got %s`, what, describe(n))
	case len(n.Content) == 0:
		return nil, p.errorf(n, "%s: post: empty list; give the program and its arguments, or leave post out", what)
	}
	argv := make([]string, 0, len(n.Content))
	for i, e := range n.Content {
		e = deref(e)
		s, err := p.str(e, what, "post")
		switch {
		case err != nil:
			return nil, err
		case i == 0 && s == "":
			return nil, p.errorf(e, "%s: post: the program (the first item) is empty; name one, like /bin/sh", what)
		case strings.ContainsRune(s, 0):
			return nil, p.errorf(e, "%s: post: item %d contains a NUL character, which no command line can hold", what, i+1)
		}
		argv = append(argv, s)
	}
	return argv, nil
}

// spots gathers the places a profile writes in its mount: the name of each
// file and of each directory an entry fills. Two entries clash when they
// write the same file, or when one writes a file where another needs a
// directory.
type spots []spot

type spot struct {
	name string
	key  string // name with '/' made the smallest byte, to sort by
	dir  bool
	at   *yaml.Node // where the entry names it
}

func (sp *spots) add(name string, dir bool, at *yaml.Node) {
	if name = strings.TrimSuffix(name, "/"); name != "" {
		*sp = append(*sp, spot{name, strings.ReplaceAll(name, "/", "\x00"), dir, at})
	}
}

// check reports the first clash. Sorted with '/' before every other byte,
// a name is followed by the names equal to it and then by those inside it,
// so comparing neighbours finds every clash.
func (sp spots) check(p *parser, what string) error {
	s := slices.Clone(sp)
	slices.SortStableFunc(s, func(a, b spot) int { return strings.Compare(a.key, b.key) })
	for i := 1; i < len(s); i++ {
		a, b := s[i-1], s[i]
		inside := strings.HasPrefix(b.name, a.name+"/")
		if !inside && a.name != b.name || a.dir && b.dir || a.dir && inside {
			continue
		}
		first, second := a, b
		if second.at.Line < first.at.Line || second.at.Line == first.at.Line && second.at.Column < first.at.Column {
			first, second = second, first
		}
		if a.name == b.name && !a.dir && !b.dir {
			return p.errorf(second.at, "%s: the entries on lines %d and %d both write the file %s; give each its own name", what, first.at.Line, second.at.Line, quote(a.name))
		}
		// One writes a file where the other needs a directory.
		file, other := a, b
		if a.dir {
			file, other = b, a
		}
		return p.errorf(second.at, "%s: %s is a file on line %d but %s on line %d needs it to be a directory; rename one", what, quote(file.name), file.at.Line, quote(other.name), other.at.Line)
	}
	return nil
}

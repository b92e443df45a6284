package manifest

import (
	"cmp"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/privyhq/privy/api"
)

func (p *parser) repos(v *yaml.Node, what string, sp *spots) ([]api.ProfileRepo, error) {
	if isNull(v) {
		return nil, nil
	}
	if v.Kind != yaml.SequenceNode {
		return nil, p.errorf(v, "%s: repos: want a list of mappings with url and optionally ref, dir, files and credentials, got %s", what, describe(v))
	}
	repos := make([]api.ProfileRepo, 0, len(v.Content))
	for i, e := range v.Content {
		r, err := p.repo(deref(e), fmt.Sprintf("%s repo #%d", what, i+1), sp)
		if err != nil {
			return nil, err
		}
		repos = append(repos, r)
	}
	return repos, nil
}

// repo reads one git repository and adds the places its files go to sp.
func (p *parser) repo(v *yaml.Node, what string, sp *spots) (api.ProfileRepo, error) {
	var r api.ProfileRepo
	if v.Kind != yaml.MappingNode {
		return r, p.errorf(v, "%s: want a mapping with url and optionally ref, dir, files and credentials, got %s", what, describe(v))
	}
	keys := make(map[string]*yaml.Node) // the keys given, for checks across them
	var dir *yaml.Node
	var srcs []*yaml.Node // where each of r.Files is named
	var urlNode *yaml.Node
	var isSSH bool
	err := p.mapping(v, "in "+what, func(k, v *yaml.Node) error {
		keys[k.Value] = k
		var err error
		switch k.Value {
		case "url":
			r.URL, isSSH, err = p.repoURL(v, what)
			urlNode = v
		case "ref":
			r.Ref, err = p.ref(v, what)
		case "dir":
			r.Dir, err = p.mountPath(v, what, "dir")
			dir = v
		case "files":
			r.Files, srcs, err = p.repoFiles(v, what)
		case "ssh_key":
			r.SSHKey, err = p.storePath(v, what)
		case "known_hosts":
			r.KnownHosts, err = p.storePath(v, what)
		case "username":
			r.Username, err = p.username(v, what)
		case "password":
			r.Password, err = p.storePath(v, what)
		case "age_identity":
			r.AgeIdentity, err = p.storePath(v, what)
		case "mode", "uid", "gid":
			err = p.owner(k, v, what, &r.Owner)
		default:
			err = p.unknownKey(k, "in "+what, repoKeys)
		}
		return err
	})
	if err != nil {
		return r, err
	}
	if urlNode == nil {
		return r, p.errorf(v, "%s has no url; give url: ssh://…, https://… or user@host:path", what)
	}
	if isSSH {
		for _, name := range []string{"username", "password"} {
			if k := keys[name]; k != nil {
				return r, p.errorf(k, "%s: %s is for https:// URLs; an ssh URL names its user (ssh://git@host/… or git@host:path) and authenticates with ssh_key", what, name)
			}
		}
		if keys["known_hosts"] == nil {
			return r, p.errorf(urlNode, "%s: an ssh URL needs known_hosts: the store path of known_hosts lines for its host (privy always checks host keys)", what)
		}
	} else {
		for _, name := range []string{"ssh_key", "known_hosts"} {
			if k := keys[name]; k != nil {
				return r, p.errorf(k, "%s: %s is for ssh URLs; an https:// URL authenticates with username and password", what, name)
			}
		}
	}
	switch {
	case len(r.Files) > 0:
		for i, f := range r.Files {
			dest := cmp.Or(f.Dest, f.Src)
			sp.add(path.Join(r.Dir, dest), strings.HasSuffix(dest, "/"), srcs[i])
		}
	case dir != nil:
		sp.add(r.Dir, true, dir)
	}
	return r, nil
}

// repoURL reads a repo's url and reports whether it is fetched over ssh.
// Messages leave the URL out: one may hold a password.
func (p *parser) repoURL(n *yaml.Node, what string) (string, bool, error) {
	const use = "use ssh://…, https://…, http://… (loopback only) or user@host:path"
	s, err := p.str(n, what, "url")
	switch {
	case err != nil:
		return "", false, err
	case s == "":
		return "", false, p.errorf(n, "%s: url is empty; %s", what, use)
	case strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return "", false, p.errorf(n, "%s: url contains whitespace or a control character; %s", what, use)
	}
	scheme, _, ok := strings.Cut(s, "://")
	if !ok {
		if !scpLike.MatchString(s) {
			return "", false, p.errorf(n, "%s: url is not one privy fetches (local paths and file:// are not); %s", what, use)
		}
		return s, true, nil
	}
	switch scheme {
	case "ssh", "https", "http":
	default:
		shown := ""
		if scheme != "" && !strings.ContainsFunc(scheme, func(r rune) bool { return !('a' <= r && r <= 'z' || r == '+' || r == '-' || r == '.') }) {
			shown = " " + quote(scheme)
		}
		return "", false, p.errorf(n, "%s: url scheme%s is not supported; %s", what, shown, use)
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", false, p.errorf(n, "%s: url is not a valid URL; %s", what, use)
	case u.Hostname() == "":
		return "", false, p.errorf(n, "%s: url has no host; write it like %s://git.example/ops/config.git", what, scheme)
	}
	if _, set := u.User.Password(); set {
		return "", false, p.errorf(n, "%s: url holds a password; remove it from the URL, put it in the store and name it with password: (and the user with username:)", what)
	}
	return s, scheme == "ssh", nil
}

// scpLike matches git's scp-like ssh address user@host:path, with an IPv6
// host in brackets. It is internal/profile's rule, which the server applies.
var scpLike = regexp.MustCompile(`^[A-Za-z0-9._-]+@(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):.+$`)

// ref reads a branch or tag name. Git's rules for ref names are many; this
// keeps out what cannot be one and what a git command line would read as
// an option.
func (p *parser) ref(n *yaml.Node, what string) (string, error) {
	s, err := p.str(n, what, "ref")
	if err != nil {
		return "", err
	}
	if s == "" || strings.HasPrefix(s, "-") || strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return "", p.errorf(n, "%s: ref %s is not a branch or tag name; write one like main or v1.2.0, or leave ref out for the remote's default branch", what, quote(s))
	}
	return s, nil
}

// username reads a user name for HTTP basic authentication.
func (p *parser) username(n *yaml.Node, what string) (string, error) {
	s, err := p.str(n, what, "username")
	if err != nil {
		return "", err
	}
	if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r == ':' || unicode.IsControl(r) }) {
		return "", p.errorf(n, "%s: username %s: write a user name without ':' or control characters", what, quote(s))
	}
	return s, nil
}

// repoFiles reads the files a repo copies and the nodes that name them.
func (p *parser) repoFiles(v *yaml.Node, what string) ([]api.RepoFile, []*yaml.Node, error) {
	switch {
	case isNull(v):
		return nil, nil, nil
	case v.Kind != yaml.SequenceNode:
		return nil, nil, p.errorf(v, "%s: files: want a list of paths in the repository, like [dnsmasq.conf, {src: tftp/, dest: tftp/}], got %s", what, describe(v))
	case len(v.Content) == 0:
		return nil, nil, p.errorf(v, "%s: files: empty list; list the files to copy, or leave files out to copy every file", what)
	}
	files := make([]api.RepoFile, 0, len(v.Content))
	nodes := make([]*yaml.Node, 0, len(v.Content))
	for i, e := range v.Content {
		e = deref(e)
		fw := fmt.Sprintf("%s file #%d", what, i+1)
		var f api.RepoFile
		var err error
		at := e
		switch e.Kind {
		case yaml.ScalarNode:
			f.Src, err = p.src(e, fw, "src")
		case yaml.MappingNode:
			var dest *yaml.Node
			err = p.mapping(e, "in "+fw, func(k, v *yaml.Node) error {
				var err error
				switch k.Value {
				case "src":
					f.Src, err = p.src(v, fw, "src")
					at = cmp.Or(dest, v)
				case "dest":
					f.Dest, err = p.src(v, fw, "dest")
					dest, at = v, v
				case "mode":
					f.Mode, err = p.mode(v, fw)
				default:
					err = p.unknownKey(k, "in "+fw, srcKeys)
				}
				return err
			})
			switch {
			case err != nil:
			case f.Src == "":
				err = p.errorf(e, "%s has no src; give src: <path in the repository>", fw)
			case dest != nil && strings.HasSuffix(f.Src, "/") != strings.HasSuffix(f.Dest, "/"):
				if strings.HasSuffix(f.Src, "/") {
					err = p.errorf(dest, "%s: src %s is a directory (it ends in '/'), so dest must end in '/' too: %s", fw, quote(f.Src), quote(f.Dest+"/"))
				} else {
					err = p.errorf(dest, "%s: src %s is a file, so dest names a file and must not end in '/'; write the file's path, like %s", fw, quote(f.Src), quote(f.Dest+path.Base(f.Src)))
				}
			}
		default:
			err = p.errorf(e, "%s: want a path in the repository or a mapping with src and optionally dest, mode, got %s", fw, describe(e))
		}
		if err != nil {
			return nil, nil, err
		}
		files = append(files, f)
		nodes = append(nodes, at)
	}
	return files, nodes, nil
}

// src reads a relative path that may end in '/' to name a directory.
func (p *parser) src(n *yaml.Node, what, field string) (string, error) {
	s, err := p.str(n, what, field)
	if err != nil {
		return "", err
	}
	if err := p.checkName(n, strings.TrimSuffix(s, "/"), what+": "+field); err != nil {
		return "", err
	}
	return s, nil
}

package detect

import (
	"path"
	"regexp"
	"strings"
	"sync"
)

// HeadSize is how many leading bytes of a file CheckFile looks at.
const HeadSize = 4 << 10

// FileRule recognises a file that is a secret by itself, by its name and the
// first HeadSize bytes of its content.
type FileRule struct {
	ID          string // stable name reported with findings, such as "ssh-private-key-file"
	Description string // one line for reports

	name    func(base, parent string) bool // base name and the name of its folder
	content func(head []byte) bool         // nil: the name is enough
}

// FileRules returns the file rules CheckFile applies, for reports that
// describe them.
func FileRules() []FileRule {
	return append([]FileRule(nil), fileRules()...)
}

// CheckFile returns the ids of the file rules that fire for the file at p
// (slash-separated, as in a layer tar; leading "/" or "./" does not matter),
// given the first bytes of its content (at most HeadSize are looked at). It
// returns nil for most files without looking at head.
func CheckFile(p string, head []byte) []string {
	p = path.Clean("/" + p)
	base, parent := path.Base(p), path.Base(path.Dir(p))
	if len(head) > HeadSize {
		head = head[:HeadSize]
	}
	var ids []string
	for _, r := range fileRules() {
		if r.name(base, parent) && (r.content == nil || r.content(head)) {
			ids = append(ids, r.ID)
		}
	}
	return ids
}

var fileRules = sync.OnceValue(func() []FileRule {
	privateKey := regexp.MustCompile(`-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----`)
	// Values that are references rather than secrets: ${NPM_TOKEN}, $TOKEN,
	// %(password)s.
	const value = `["']?[^\s"'$%]`
	npmAuth := regexp.MustCompile(`(?m)^[ \t]*(?:\S*:)?_(?:auth|authToken|password)[ \t]*=[ \t]*` + value)
	dockerAuth := regexp.MustCompile(`"(?:auth|identitytoken)"\s*:\s*"[^"\s]`)
	pypirc := regexp.MustCompile(`(?m)^[ \t]*password[ \t]*[:=][ \t]*` + value)
	netrc := regexp.MustCompile(`(?:^|\s)password\s+` + value)
	gitCred := regexp.MustCompile(`[a-z][a-z0-9+.-]*://[^:@/\s]*:[^@\s]+@`)
	kube := regexp.MustCompile(`(?m)^[ \t]*(?:client-key-data|token|password)[ \t]*:[ \t]*` + value)
	return []FileRule{
		{
			ID:          "ssh-private-key-file",
			Description: "SSH private key file (id_rsa, id_ecdsa, id_ed25519, ...)",
			name: func(base, _ string) bool {
				switch base {
				case "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "id_ecdsa_sk", "id_ed25519_sk":
					return true
				}
				return false
			},
			content: privateKey.Match,
		},
		{
			ID:          "private-key-file",
			Description: "*.key or *.pem file holding a PEM private key",
			name:        hasExt(".key", ".pem"),
			content:     privateKey.Match,
		},
		{
			ID:          "npmrc-auth",
			Description: ".npmrc with an _auth, _authToken or _password line",
			name:        isBase(".npmrc", "npmrc"),
			content:     npmAuth.Match,
		},
		{
			ID:          "docker-config-auth-file",
			Description: "Docker client config with registry credentials",
			name: func(base, parent string) bool {
				return base == "config.json" && parent == ".docker" || base == ".dockercfg"
			},
			// A non-empty "auth" or "identitytoken", under "auths" or, in
			// the older .dockercfg, at the top level. Credentials kept by a
			// credsStore or credHelpers are not in the file.
			content: dockerAuth.Match,
		},
		{
			ID:          "pypirc-password",
			Description: ".pypirc with a password",
			name:        isBase(".pypirc"),
			content:     pypirc.Match,
		},
		{
			ID:          "netrc-password",
			Description: ".netrc with a password",
			name:        isBase(".netrc", "_netrc"),
			content:     netrc.Match,
		},
		{
			ID:          "git-credentials",
			Description: "git credential store (.git-credentials) with a password",
			name:        isBase(".git-credentials"),
			content:     gitCred.Match,
		},
		{
			ID:          "pkcs12-file",
			Description: "PKCS #12 key store (*.p12, *.pfx)",
			name:        hasExt(".p12", ".pfx"),
			// DER: a SEQUENCE, so empty and text stand-ins do not fire.
			content: func(head []byte) bool { return len(head) > 0 && head[0] == 0x30 },
		},
		{
			ID:          "kubeconfig-credentials",
			Description: "kubeconfig with a client key, token or password",
			name: func(base, parent string) bool {
				switch {
				case base == "config" && parent == ".kube", strings.Contains(base, "kubeconfig"):
					return true
				case parent == "kubernetes" && strings.HasSuffix(base, ".conf"):
					return true // /etc/kubernetes/admin.conf, kubelet.conf, ...
				}
				return false
			},
			content: kube.Match,
		},
	}
})

func isBase(names ...string) func(base, parent string) bool {
	return func(base, _ string) bool {
		for _, n := range names {
			if base == n {
				return true
			}
		}
		return false
	}
}

func hasExt(exts ...string) func(base, parent string) bool {
	return func(base, _ string) bool {
		ext := strings.ToLower(path.Ext(base))
		for _, e := range exts {
			if ext == e {
				return true
			}
		}
		return false
	}
}

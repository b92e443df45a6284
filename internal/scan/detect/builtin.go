package detect

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"regexp"
	"slices"
	"sync"
)

// Pieces shared by the PEM-like rules. A key may be on its own lines or
// JSON-escaped inside a string ("-----BEGIN ...-----\nMIIE..."), so line
// breaks are whitespace or a literal \n.
const (
	pemBreak = `(?:\s|\\[nr])`
	// pemHeaders are RFC 1421 headers (Proc-Type, DEK-Info) or armor
	// headers (Version, Comment) before the body.
	pemHeaders = `(?:[A-Za-z][A-Za-z0-9-]*:[^\r\n\\]*` + pemBreak + `+)*`
	// pemBody is at least 32 base64 bytes, then more lines of base64. A PGP
	// checksum line ("=abcd") and the END line are not part of it.
	pemBody = `([A-Za-z0-9+/]{32,}={0,2}(?:` + pemBreak + `+[A-Za-z0-9+/]+={0,2})*)`
)

// placeholder matches secret values that are documentation or templates
// rather than secrets: changeme, example, ${VAR}, <password>, xxx, ****.
var placeholder = `(?i)(?:^(?:changeme|changeit|password|passw0rd|secret|sample|dummy|none|null|nil|undefined|true|false|todo|tbd|n/a)$` +
	`|example|changeme|change_me|placeholder|redacted|dummy|your[_-]?(?:own[_-]?)?(?:password|passwd|secret|token|api[_-]?key|key)` +
	`|xxx|\*\*\*|\.\.\.|<[^>]*>|\$\{[^}]*\}|\{\{.*\}\})`

// Builtin returns the built-in rules: high-signal detectors whose regexes
// name a precise format and whose allow-lists drop the documented examples
// of that format. Each call returns new Rule values (sharing their compiled,
// immutable regexes), so a caller may change them freely.
func Builtin() []*Rule {
	shared := builtin()
	out := make([]*Rule, len(shared))
	for i, r := range shared {
		c := *r
		c.Keywords = slices.Clone(r.Keywords)
		c.Allow = slices.Clone(r.Allow)
		out[i] = &c
	}
	return out
}

// builtin compiles the built-in rules once.
var builtin = sync.OnceValue(func() []*Rule {
	allowPlaceholder := regexp.MustCompile(placeholder)
	return []*Rule{
		{
			ID:          "private-key",
			Description: "PEM private key (RSA, EC, DSA, PKCS #8, encrypted PKCS #8)",
			Keywords:    []string{"private key-----"},
			Pattern: regexp.MustCompile(`-----BEGIN ((?:RSA |EC |DSA |ENCRYPTED )?PRIVATE KEY)-----` +
				pemBreak + `*` + pemHeaders + pemBody),
			SecretGroup: 2,
			MinEntropy:  4.5,
		},
		{
			ID:          "openssh-private-key",
			Description: "OpenSSH private key",
			Keywords:    []string{"openssh private key"},
			// The body is base64 of "openssh-key-v1\x00".
			Pattern: regexp.MustCompile(`-----BEGIN OPENSSH PRIVATE KEY-----` + pemBreak + `*` +
				`(b3BlbnNzaC1rZXktdjE[A-Za-z0-9+/]{13,}={0,2}(?:` + pemBreak + `+[A-Za-z0-9+/]+={0,2})*)`),
			SecretGroup: 1,
		},
		{
			ID:          "pgp-private-key",
			Description: "PGP private key block",
			Keywords:    []string{"pgp private key block"},
			Pattern: regexp.MustCompile(`-----BEGIN PGP PRIVATE KEY BLOCK-----` +
				pemBreak + `*` + pemHeaders + pemBody),
			SecretGroup: 1,
			MinEntropy:  4.5,
		},
		{
			ID:          "aws-access-key-id",
			Description: "AWS access key id (long-term AKIA or temporary ASIA)",
			Keywords:    []string{"akia", "asia"},
			Pattern:     regexp.MustCompile(`(?:AKIA|ASIA)[A-Z0-9]{16}\b`),
			wordStart:   true,
			MinEntropy:  3,
			// AKIAIOSFODNN7EXAMPLE and kin, from AWS's documentation.
			Allow: []*regexp.Regexp{regexp.MustCompile(`EXAMPLE$`)},
		},
		{
			ID:          "aws-secret-access-key",
			Description: "AWS secret access key assigned to aws_secret_access_key or SecretAccessKey",
			Keywords:    []string{"secret_access_key", "secretaccesskey", "secret-access-key"},
			anchored:    true,
			Pattern: regexp.MustCompile(`^(?i:secret_access_key|secretaccesskey|secret-access-key)\\?["']?\s*(?::=|=>|=|:)\s*\\?["']?` +
				`([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)`),
			SecretGroup: 1,
			// 40 random base64 bytes carry about 4.7 bits per byte; a
			// 40-digit hex hash (sha1) at most 4.
			MinEntropy: 4.3,
			Allow:      []*regexp.Regexp{regexp.MustCompile(`EXAMPLEKEY$`), allowPlaceholder},
		},
		{
			ID:          "github-token",
			Description: "GitHub token (personal, OAuth, user-to-server, server-to-server or refresh)",
			Keywords:    []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_"},
			Pattern:     regexp.MustCompile(`gh[pousr]_[A-Za-z0-9]{36,}\b`),
			wordStart:   true,
			MinEntropy:  3.5,
		},
		{
			ID:          "github-fine-grained-token",
			Description: "GitHub fine-grained personal access token",
			Keywords:    []string{"github_pat_"},
			wordStart:   true,
			Pattern:     regexp.MustCompile(`github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}\b`),
			MinEntropy:  3.5,
		},
		{
			ID:          "gitlab-token",
			Description: "GitLab personal access token",
			Keywords:    []string{"glpat-"},
			wordStart:   true,
			Pattern:     regexp.MustCompile(`glpat-[A-Za-z0-9_-]{20,}`),
			MinEntropy:  3.5,
		},
		{
			ID:          "slack-token",
			Description: "Slack bot, user, app or refresh token",
			Keywords:    []string{"xoxb-", "xoxp-", "xoxa-", "xoxr-"},
			anchored:    true,
			wordStart:   true,
			Pattern:     regexp.MustCompile(`^xox[bpar]-[0-9]{1,14}(?:-[0-9A-Za-z]{1,64}){0,3}-[0-9A-Za-z]{8,64}\b`),
			MinEntropy:  3,
		},
		{
			ID:          "slack-webhook",
			Description: "Slack incoming webhook URL",
			Keywords:    []string{"hooks.slack.com"},
			Pattern:     regexp.MustCompile(`hooks\.slack\.com/services/(T[A-Z0-9]{8,12}/B[A-Z0-9]{8,12}/[A-Za-z0-9]{24})\b`),
			SecretGroup: 1,
			MinEntropy:  3.5, // drops T00000000/B00000000/XXXX... from Slack's documentation
		},
		{
			ID:          "stripe-key",
			Description: "Stripe live secret or restricted key",
			Keywords:    []string{"sk_live_", "rk_live_"},
			anchored:    true,
			wordStart:   true,
			Pattern:     regexp.MustCompile(`^[sr]k_live_[0-9A-Za-z]{24,247}\b`),
			MinEntropy:  3.5,
		},
		{
			ID:          "google-api-key",
			Description: "Google API key",
			Keywords:    []string{"aiza"},
			wordStart:   true,
			Pattern:     regexp.MustCompile(`(AIza[0-9A-Za-z_-]{35})(?:[^0-9A-Za-z_-]|$)`),
			SecretGroup: 1,
			MinEntropy:  4,
		},
		{
			ID:          "npm-token",
			Description: "npm access token",
			Keywords:    []string{"npm_"},
			wordStart:   true,
			Pattern:     regexp.MustCompile(`npm_[A-Za-z0-9]{36}\b`),
			MinEntropy:  3.5,
		},
		{
			ID:          "pypi-token",
			Description: "PyPI or TestPyPI API token",
			// The bodies start with the base64 of a macaroon naming pypi.org
			// or test.pypi.org.
			Keywords:   []string{"pypi-ageichlwas5vcmc", "pypi-agendgvzdc5wexbplm9yzw"},
			wordStart:  true,
			Pattern:    regexp.MustCompile(`pypi-(?:AgEIcHlwaS5vcmc|AgENdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{50,}`),
			MinEntropy: 4,
		},
		{
			ID:          "docker-config-auth",
			Description: `Docker config "auth" entry (base64 of user:password)`,
			// Also JSON-escaped, as in DOCKER_AUTH_CONFIG inside an image config.
			Keywords:    []string{`"auth"`, `auth\"`},
			anchored:    true,
			Pattern:     regexp.MustCompile(`^(?:"auth"|auth\\")\s*:\s*\\?"([A-Za-z0-9+/]{4,}={0,2})\\?"`),
			SecretGroup: 1,
			verify:      func(b []byte) bool { return dockerAuth(b, allowPlaceholder) },
		},
		{
			ID:          "jwt",
			Description: "JSON Web Token",
			Keywords:    []string{"eyj"},
			// Header and payload are base64url JSON objects ("eyJ" is
			// base64 of `{"`). The signature is required unless the token
			// runs to the end of the window, which may have cut it.
			wordStart: true,
			Pattern:   regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]{16,}|\.?$)`),
			// The payload of jwt.io's example token.
			Allow:  []*regexp.Regexp{regexp.MustCompile(`\.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ`)},
			verify: jwtHeader,
		},
		{
			ID:          "password-assignment",
			Description: "password, secret, token or API key assigned a literal value",
			Keywords:    []string{"password", "passwd", "secret", "token", "api_key", "apikey", "api-key"},
			// NAME = value, NAME: value, "NAME": "value", NAME := value,
			// NAME => value, also JSON-escaped, matched from the keyword
			// on. The name may have a prefix (DB_PASSWORD, client_secret)
			// but no suffix other than "key" (SECRET_KEY), which keeps out
			// password_file, token_url and secretKeyRef. The value stops at
			// space, quotes and brackets, so ${VAR}, <password> and f(x) do
			// not match; it is cut at 128 bytes.
			anchored: true,
			Pattern: regexp.MustCompile(`^(?i:password|passwd|secret|token|api[_-]?key)(?i:[_.-]?key)?` +
				`\\?["']?[ \t]*(?::=|=>|=|:)[ \t]*\\?["'` + "`" + `]?` +
				`([^\s"'` + "`" + `;,<>{}()\[\]=\\][^\s"'` + "`" + `;,<>{}()\[\]\\]{7,})`),
			maxSecret:   128,
			SecretGroup: 1,
			MinEntropy:  3.5,
			Allow: []*regexp.Regexp{
				allowPlaceholder,
				// Variables and crypt(3) hashes: $VAR, $(cmd), $2b$..., %(x)s.
				regexp.MustCompile(`^[$%]`),
				// Code rather than a value: os.environ.get, this.token,
				// SOME_CONSTANT, getAuthToken.
				regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+$`),
				regexp.MustCompile(`^(?:[A-Z_]+|[a-z_]+|[a-z]+(?:[A-Z][a-z]+)+)$`),
				// Paths.
				regexp.MustCompile(`^(?:/|\./|\.\./|~/)[A-Za-z0-9_./-]*$`),
				// The next assignment after an empty one: the history of
				// ENV TOKEN=${UNSET} OTHER=x reads "TOKEN= OTHER=x".
				regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`),
				// Formats that the specific rules above own, so that
				// GITHUB_TOKEN=ghp_... is reported once.
				regexp.MustCompile(`^(?:gh[pousr]_|github_pat_|glpat-|xox[bpar]-|[sr]k_live_|AIza|npm_|pypi-|AKIA|ASIA|eyJ|-----BEGIN)`),
			},
		},
	}
})

// dockerAuth reports whether b is the base64 of user:password with a
// non-empty user and a password that is not a placeholder.
func dockerAuth(b []byte, placeholder *regexp.Regexp) bool {
	dec := make([]byte, base64.StdEncoding.DecodedLen(len(b)))
	n, err := base64.StdEncoding.Decode(dec, b)
	if err != nil {
		return false
	}
	user, pass, ok := bytes.Cut(dec[:n], []byte(":"))
	if !ok || len(user) == 0 || len(pass) == 0 || placeholder.Match(pass) {
		return false
	}
	for _, c := range dec[:n] {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// jwtHeader reports whether the first segment of a JWT decodes to a JSON
// object with a string "alg", as every JOSE header has.
func jwtHeader(token []byte) bool {
	seg, _, _ := bytes.Cut(token, []byte("."))
	raw, err := base64.RawURLEncoding.DecodeString(string(bytes.TrimRight(seg, "=")))
	if err != nil {
		return false
	}
	var h struct {
		Alg *string `json:"alg"`
	}
	return json.Unmarshal(raw, &h) == nil && h.Alg != nil && *h.Alg != ""
}

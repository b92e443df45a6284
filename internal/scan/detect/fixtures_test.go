package detect_test

import (
	"encoding/base64"
	"strings"
)

// Fixtures are built at run time from obviously synthetic parts ("FAKE"
// followed by the alphabet in order), so that the source holds no string a
// secret scanner would flag and no value that could be a live credential.
// Bodies start with FAKE rather than EXAMPLE because the rules allow-list
// AWS's documented EXAMPLE keys.

const (
	alnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b64   = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
)

// synth returns n alphanumerics: "FAKE", then the alphanumerics in order,
// repeated as needed. Its entropy is high, like a token's.
func synth(n int) string { return cycle("FAKE"+alnum, n) }

func cycle(alphabet string, n int) string {
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(alphabet)
	}
	return b.String()[:n]
}

// pemBody returns lines of synthetic base64, 64 bytes each.
func pemBody(lines int) []string {
	out := make([]string, lines)
	for i := range out {
		out[i] = cycle(b64[i:]+b64[:i], 64)
	}
	return out
}

// armor wraps body lines in BEGIN/END lines of the given type.
func armor(kind string, headers []string, body []string, nl string) string {
	var b strings.Builder
	b.WriteString("-----BEGIN " + kind + "-----" + nl)
	for _, h := range headers {
		b.WriteString(h + nl)
	}
	if len(headers) > 0 {
		b.WriteString(nl)
	}
	b.WriteString(strings.Join(body, nl) + nl)
	b.WriteString("-----END " + kind + "-----" + nl)
	return b.String()
}

func b64url(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
func b64std(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// example is an input for one rule: a true example, with the secret the
// rule must report, or a false one (want == ""), a look-alike it must not
// report.
type example struct {
	rule string
	in   string
	want string
}

func examples() []example {
	body := pemBody(3)
	bodyLF := strings.Join(body, "\n")
	sshBody := []string{"b3BlbnNzaC1rZXktdjEAAAAA" + cycle(b64, 40), cycle(b64[7:]+b64[:7], 64)}
	hs256 := b64url(`{"alg":"HS256","typ":"JWT"}`)
	claims := b64url(`{"sub":"fake-user","iss":"https://issuer.invalid"}`)
	jwt := hs256 + "." + claims + "." + synth(43)
	pw := "fake" + synth(16)
	auth := b64std("fakeuser:" + synth(16))
	aws40 := "fake/" + synth(35)

	return []example{
		// PEM private keys.
		{"private-key", armor("RSA PRIVATE KEY", nil, body, "\n"), bodyLF},
		{"private-key", armor("PRIVATE KEY", nil, body, "\r\n"), strings.Join(body, "\r\n")},
		{"private-key", armor("EC PRIVATE KEY", nil, body, "\n"), bodyLF},
		{"private-key", armor("DSA PRIVATE KEY", nil, body, "\n"), bodyLF},
		{"private-key", armor("ENCRYPTED PRIVATE KEY", nil, body, "\n"), bodyLF},
		{"private-key", armor("RSA PRIVATE KEY", []string{"Proc-Type: 4,ENCRYPTED", "DEK-Info: AES-128-CBC,00FAKE00"}, body, "\n"), bodyLF},
		{"private-key", `{"type": "service_account", "private_key": "` + armor("PRIVATE KEY", nil, body, `\n`) + `"}`, strings.Join(body, `\n`)},
		{"private-key", armor("PUBLIC KEY", nil, body, "\n"), ""},
		{"private-key", armor("RSA PUBLIC KEY", nil, body, "\n"), ""},
		{"private-key", armor("CERTIFICATE", nil, body, "\n"), ""},
		{"private-key", armor("RSA PRIVATE KEY", nil, []string{"...", "(your key here)"}, "\n"), ""},
		{"private-key", armor("RSA PRIVATE KEY", nil, []string{strings.Repeat("A", 64), strings.Repeat("A", 64)}, "\n"), ""},
		{"private-key", armor("OPENSSH PRIVATE KEY", nil, sshBody, "\n"), ""},
		{"private-key", `const header = "-----BEGIN RSA ` + `PRIVATE KEY-----"`, ""},

		{"openssh-private-key", armor("OPENSSH PRIVATE KEY", nil, sshBody, "\n"), strings.Join(sshBody, "\n")},
		{"openssh-private-key", armor("OPENSSH PRIVATE KEY", nil, body, "\n"), ""},
		{"openssh-private-key", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + cycle(b64, 43) + " fake@host", ""},
		{"openssh-private-key", armor("OPENSSH PRIVATE KEY", nil, []string{"<redacted>"}, "\n"), ""},

		{"pgp-private-key", armor("PGP PRIVATE KEY BLOCK", []string{"Version: FakePG v0", "Comment: synthetic"}, append(body, "=FaKe"), "\n"), bodyLF},
		{"pgp-private-key", armor("PGP PUBLIC KEY BLOCK", []string{"Version: FakePG v0"}, body, "\n"), ""},
		{"pgp-private-key", armor("PGP PRIVATE KEY BLOCK", nil, []string{"paste your key here"}, "\n"), ""},

		// AWS.
		{"aws-access-key-id", "aws_access_key_id = AKIA" + synth(16) + "\n", "AKIA" + synth(16)},
		{"aws-access-key-id", `{"AccessKeyId": "ASIA` + synth(16) + `"}`, "ASIA" + synth(16)},
		{"aws-access-key-id", "aws_access_key_id = AKIA" + "IOSFODNN7" + "EXAMPLE", ""}, // AWS's documented example
		{"aws-access-key-id", "AKIA" + synth(15) + " short", ""},
		{"aws-access-key-id", "AKIA" + synth(17) + " long", ""},
		{"aws-access-key-id", "akia" + strings.ToLower(synth(16)), ""},
		{"aws-access-key-id", "AKIA" + strings.Repeat("A", 16), ""},
		{"aws-access-key-id", "Food of Asia: ASIAN CUISINE", ""},

		{"aws-secret-access-key", "aws_secret_access_key = " + aws40 + "\n", aws40},
		{"aws-secret-access-key", "AWS_SECRET_ACCESS_KEY=" + aws40, aws40},
		{"aws-secret-access-key", `{"SecretAccessKey": "` + aws40 + `"}`, aws40},
		{"aws-secret-access-key", "aws-secret-access-key: '" + aws40 + "'", aws40},
		{"aws-secret-access-key", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY", ""},
		{"aws-secret-access-key", "aws_secret_access_key = da39a3ee5e6b4b0d3255bfef95601890afd80709", ""}, // sha1 of ""
		{"aws-secret-access-key", "aws_secret_access_key = " + aws40 + "X", ""},

		// Forges and package registries.
		{"github-token", "GITHUB_TOKEN=ghp_" + synth(36), "ghp_" + synth(36)},
		{"github-token", "gho_" + synth(36), "gho_" + synth(36)},
		{"github-token", "ghu_" + synth(36), "ghu_" + synth(36)},
		{"github-token", "x-access-token:ghs_" + synth(36) + "@github.com", "ghs_" + synth(36)},
		{"github-token", "ghr_" + synth(76), "ghr_" + synth(76)},
		{"github-token", "ghp_" + strings.Repeat("x", 36), ""},
		{"github-token", "ghp_" + synth(35), ""},
		{"github-token", "ghp_" + synth(36) + "_suffix", ""},
		{"github-token", "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 ghp_", ""},

		{"github-fine-grained-token", "github_pat_" + synth(22) + "_" + synth(59), "github_pat_" + synth(22) + "_" + synth(59)},
		{"github-fine-grained-token", "github_pat_" + synth(22), ""},

		{"gitlab-token", "private-token: glpat-" + synth(20), "glpat-" + synth(20)},
		{"gitlab-token", "glpat-" + strings.Repeat("x", 20), ""},
		{"gitlab-token", "glpat-" + synth(12), ""},

		{"npm-token", "//registry.npmjs.org/:_authToken=npm_" + synth(36), "npm_" + synth(36)},
		{"npm-token", "npm_config_cache=/root/.npm npm_config_user_agent=npm/10", ""},
		{"npm-token", "npm_" + synth(35), ""},

		{"pypi-token", "password = pypi-AgEIcHlwaS5vcmc" + synth(60), "pypi-AgEIcHlwaS5vcmc" + synth(60)},
		{"pypi-token", "pypi-AgENdGVzdC5weXBpLm9yZw" + synth(60), "pypi-AgENdGVzdC5weXBpLm9yZw" + synth(60)},
		{"pypi-token", "pypi-AgEIcHlwaS5vcmc" + synth(20), ""},

		// Chat and payments.
		{"slack-token", "SLACK_BOT_TOKEN=xoxb-123456789012-1234567890123-" + synth(24), "xoxb-123456789012-1234567890123-" + synth(24)},
		{"slack-token", "xoxp-1234567890-1234567890-1234567890-" + synth(32), "xoxp-1234567890-1234567890-1234567890-" + synth(32)},
		{"slack-token", "xoxa-2-" + synth(40), "xoxa-2-" + synth(40)},
		{"slack-token", "xoxr-1-" + synth(40), "xoxr-1-" + synth(40)},
		{"slack-token", "xoxb-your-token-here", ""},
		{"slack-token", "xoxb-123-abc", ""},
		{"slack-token", "xoxb-1-" + strings.Repeat("0", 24), ""},

		{"slack-webhook", "https://hooks.slack.com/services/TFAKE0TEAM/BFAKE0HOOK/" + synth(24), "TFAKE0TEAM/BFAKE0HOOK/" + synth(24)},
		{"slack-webhook", "https://hooks.slack.com/services/T00000000/B00000000/" + strings.Repeat("X", 24), ""},
		{"slack-webhook", "https://hooks.slack.com/services/", ""},

		{"stripe-key", "STRIPE_KEY=sk_live_" + synth(24), "sk_live_" + synth(24)},
		{"stripe-key", "rk_live_" + synth(99), "rk_live_" + synth(99)},
		{"stripe-key", "sk_test_" + synth(24) + " pk_live_" + synth(24), ""},
		{"stripe-key", "sk_live_" + strings.Repeat("0", 24), ""},

		{"google-api-key", `"key": "AIza` + synth(35) + `"`, "AIza" + synth(35)},
		{"google-api-key", "AIza" + synth(34) + " short", ""},
		{"google-api-key", "AIza" + strings.Repeat("0", 35), ""},

		// Docker config auths.
		{"docker-config-auth", `{"auths": {"registry.invalid": {"auth": "` + auth + `"}}}`, auth},
		{"docker-config-auth", `DOCKER_AUTH_CONFIG={\"auths\":{\"r.invalid\":{\"auth\":\"` + auth + `\"}}}`, auth},
		{"docker-config-auth", `{"auths": {"registry.invalid": {"auth": ""}}}`, ""},
		{"docker-config-auth", `{"type": "oauth2", "auth": "basic"}`, ""},
		{"docker-config-auth", `"auth": "` + b64std("no-colon-here") + `"`, ""},
		{"docker-config-auth", `"auth": "` + b64std("user:password") + `"`, ""},
		{"docker-config-auth", `"auth": "` + b64std("user:") + `"`, ""},

		// JWT.
		{"jwt", "Authorization: Bearer " + jwt + "\n", jwt},
		{"jwt", "token=" + hs256 + "." + claims, hs256 + "." + claims},                                                 // cut by the window's end
		{"jwt", hs256 + "." + b64url(`{"sub":"1234567890","name":"John Doe","iat":1516239022}`) + "." + synth(43), ""}, // jwt.io's example
		{"jwt", b64url(`{"typ":"JWT"}`) + "." + claims + "." + synth(43), ""},
		{"jwt", hs256 + "." + claims + " is not signed", ""},
		{"jwt", b64url(`{"alg":1}`) + "." + claims + "." + synth(43), ""},

		// Password assignments.
		{"password-assignment", "DB_PASSWORD=" + pw + "\n", pw},
		{"password-assignment", `{"password": "` + pw + `"}`, pw},
		{"password-assignment", "password: '" + pw + "'", pw},
		{"password-assignment", `clientSecret := "` + pw + `"`, pw},
		{"password-assignment", "SECRET_KEY = " + pw, pw},
		{"password-assignment", "auth_token => " + pw, pw},
		{"password-assignment", "passwd=" + pw, pw},
		{"password-assignment", "API_KEY=" + pw, pw},
		{"password-assignment", "apikey: " + pw, pw},
		{"password-assignment", "x-api-key: " + pw, pw},
		{"password-assignment", `{\"password\":\"` + pw + `\"}`, pw},
		{"password-assignment", "RUN mysql --password=" + pw + " -e 'select 1'", pw},
		{"password-assignment", "password=changeme", ""},
		{"password-assignment", "POSTGRES_PASSWORD=${DB_PASSWORD}", ""},
		{"password-assignment", `"password": "<password>"`, ""},
		{"password-assignment", "password: xxxxxxxxxxxxxxxx", ""},
		{"password-assignment", "password=****************", ""},
		{"password-assignment", "secret: example-secret-value-1234", ""},
		{"password-assignment", "token: your-token-goes-here-1234", ""},
		{"password-assignment", "self.token = self.config.auth_token", ""},
		{"password-assignment", "password = getpass.getpass()", ""},
		{"password-assignment", "token := os.Getenv(\"TOKEN\")", ""},
		{"password-assignment", "API_KEY=OPENAI_API_KEY_PLACEHOLDER", ""},
		{"password-assignment", "api_key: getApiKeyFromVault", ""},
		{"password-assignment", "PASSWORD_FILE=/run/secrets/db_password", ""},
		{"password-assignment", "secretKeyRef: {name: db, key: password}", ""},
		{"password-assignment", "kind: Secret", ""},
		{"password-assignment", "password: $2b$12$" + cycle(b64, 53), ""},
		{"password-assignment", "password_sha256 = e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", ""},
		{"password-assignment", "session_token_id = 123e4567-e89b-12d3-a456-426614174000", ""},
		{"password-assignment", "if password == " + pw, ""},
		{"password-assignment", "ENV APP_TOKEN= SECRET_KEY_FILE=/run/secrets/key DB_PASSWORD=changeme", ""},
		{"password-assignment", "GITHUB_TOKEN=ghp_" + synth(36), ""}, // reported by github-token
		{"password-assignment", "aws_secret_access_key = " + aws40, ""},
	}
}

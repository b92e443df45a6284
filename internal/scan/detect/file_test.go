package detect_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/privyhq/privy/internal/scan/detect"
)

type fileExample struct {
	path, head string
	want       string // the file rule that must fire; "" = none
}

func fileExamples() []fileExample {
	key := armor("RSA PRIVATE KEY", nil, pemBody(2), "\n")
	sshKey := armor("OPENSSH PRIVATE KEY", nil, pemBody(2), "\n")
	auth := b64std("fakeuser:" + synth(16))
	return []fileExample{
		{"root/.ssh/id_rsa", key, "ssh-private-key-file"},
		{"/home/app/.ssh/id_ed25519", sshKey, "ssh-private-key-file"},
		{"./id_ecdsa", sshKey, "ssh-private-key-file"},
		{"home/app/.ssh/id_dsa", key, "ssh-private-key-file"},
		{"root/.ssh/id_rsa.pub", "ssh-rsa AAAAB3NzaC1yc2E" + synth(40) + " fake@host", ""},
		{"root/.ssh/id_rsa", "", ""},
		{"root/.ssh/id_rsa", "ssh-rsa AAAAB3NzaC1yc2E" + synth(40) + " fake@host", ""},

		{"etc/ssl/private/server.key", key, "private-key-file"},
		{"app/certs/TLS.PEM", armor("CERTIFICATE", nil, pemBody(2), "\n") + sshKey, "private-key-file"},
		{"etc/ssl/certs/ca.pem", armor("CERTIFICATE", nil, pemBody(2), "\n"), ""},
		{"app/public.pem", armor("PUBLIC KEY", nil, pemBody(2), "\n"), ""},
		{"app/server.crt", key, ""},

		{"root/.npmrc", "registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken=npm_" + synth(36) + "\n", "npmrc-auth"},
		{"home/node/.npmrc", "_auth = " + auth + "\nemail=fake@invalid\n", "npmrc-auth"},
		{"usr/local/etc/npmrc", "//npm.invalid/:_password=\"" + b64std(synth(12)) + "\"\n", "npmrc-auth"},
		{"root/.npmrc", "//registry.npmjs.org/:_authToken=${NPM_TOKEN}\n", ""},
		{"root/.npmrc", "registry=https://registry.npmjs.org/\nsave-exact=true\n", ""},

		{"root/.docker/config.json", `{"auths": {"registry.invalid": {"auth": "` + auth + `"}}}`, "docker-config-auth-file"},
		{"kaniko/.docker/config.json", `{"auths":{"r.invalid":{"identitytoken":"` + synth(30) + `"}}}`, "docker-config-auth-file"},
		{"root/.dockercfg", `{"registry.invalid": {"auth": "` + auth + `", "email": "fake@invalid"}}`, "docker-config-auth-file"},
		{"root/.docker/config.json", `{"auths": {}, "credsStore": "desktop"}`, ""},
		{"root/.docker/config.json", `{"auths": {"registry.invalid": {}}, "credHelpers": {"registry.invalid": "ecr-login"}}`, ""},
		{"root/.docker/config.json", `{"auths": {"registry.invalid": {"auth": ""}}}`, ""},
		{"app/config.json", `{"auths": {"registry.invalid": {"auth": "` + auth + `"}}}`, ""},

		{"root/.pypirc", "[pypi]\nusername = __token__\npassword = pypi-" + synth(40) + "\n", "pypirc-password"},
		{"root/.pypirc", "[pypi]\nusername = __token__\n", ""},
		{"root/.pypirc", "[pypi]\npassword: %(PYPI_PASSWORD)s\n", ""},

		{"root/.netrc", "machine api.invalid login fake password " + synth(20) + "\n", "netrc-password"},
		{"root/_netrc", "machine api.invalid\n  login fake\n  password " + synth(20) + "\n", "netrc-password"},
		{"root/.netrc", "machine api.invalid login fake\n", ""},

		{"root/.git-credentials", "https://fake:" + synth(20) + "@git.invalid\n", "git-credentials"},
		{"root/.git-credentials", "", ""},

		{"app/keystore.p12", "\x30\x82\x0a\x00\x02\x01\x03", "pkcs12-file"},
		{"app/Client.PFX", "\x30\x82\x01\x00", "pkcs12-file"},
		{"app/keystore.p12", "", ""},
		{"app/keystore.p12", "placeholder, see README", ""},

		{"root/.kube/config", "apiVersion: v1\nkind: Config\nusers:\n- name: fake\n  user:\n    client-key-data: " + b64std(synth(30)) + "\n", "kubeconfig-credentials"},
		{"app/prod.kubeconfig", "users:\n- name: fake\n  user:\n    token: " + synth(40) + "\n", "kubeconfig-credentials"},
		{"etc/kubernetes/admin.conf", "users:\n- user:\n    client-key-data: " + b64std(synth(30)) + "\n", "kubeconfig-credentials"},
		{"root/.kube/config", "users:\n- name: fake\n  user:\n    exec:\n      command: aws\n", ""},
		{"etc/kubernetes/kubelet.conf", "users:\n- user:\n    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem\n", ""},
		{"app/config", "token: " + synth(40) + "\n", ""},
	}
}

func TestCheckFile(t *testing.T) {
	for _, tt := range fileExamples() {
		got := detect.CheckFile(tt.path, []byte(tt.head))
		var want []string
		if tt.want != "" {
			want = []string{tt.want}
		}
		if !slices.Equal(got, want) {
			t.Errorf("CheckFile(%q, %q) = %q; want %q", tt.path, clipHead(tt.head), got, want)
		}
	}
}

// TestFileRulesCoverage checks that every file rule has a true and a false
// example, the false one with the rule's file name, so that the content
// check is what stops it.
func TestFileRulesCoverage(t *testing.T) {
	trues, falses := map[string]int{}, map[string]int{}
	for _, ex := range fileExamples() {
		if ex.want != "" {
			trues[ex.want]++
		}
	}
	for _, r := range detect.FileRules() {
		if r.Description == "" {
			t.Errorf("file rule %s has no description", r.ID)
		}
		if trues[r.ID] == 0 {
			t.Errorf("file rule %s has no true example", r.ID)
		}
		// A false example for r: a path that r fires on with other content.
		for _, ex := range fileExamples() {
			if ex.want == "" && slices.Contains(detect.CheckFile(ex.path, []byte(firstTrueHead(r.ID))), r.ID) {
				falses[r.ID]++
			}
		}
		if falses[r.ID] == 0 {
			t.Errorf("file rule %s has no false example with a file name it fires on", r.ID)
		}
	}
}

func firstTrueHead(id string) string {
	for _, ex := range fileExamples() {
		if ex.want == id {
			return ex.head
		}
	}
	return ""
}

func TestCheckFileHeadLimit(t *testing.T) {
	head := strings.Repeat("#\n", detect.HeadSize) + "_authToken=npm_" + synth(36)
	if got := detect.CheckFile(".npmrc", []byte(head)); got != nil {
		t.Errorf("CheckFile looked past HeadSize: %q", got)
	}
}

func clipHead(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

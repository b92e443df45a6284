package scan

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/privyhq/privy/internal/scan/image"
	"github.com/privyhq/privy/internal/testenv"
)

// corpusBuild builds the Dockerfile and files in a new context folder with
// the real engine (BuildKit, no network), with env added to the CLI's
// environment: secret mounts and build arguments take their values from
// there, so no value is in any command line. The image is removed when the
// test ends.
func corpusBuild(t *testing.T, name string, files map[string][]byte, env []string, flags ...string) string {
	t.Helper()
	docker := testenv.Docker(t)
	dir := t.TempDir()
	for p, b := range files {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tag := fmt.Sprintf("privy-test/scan-%s:%d", name, time.Now().UnixNano())
	// No cache: BuildKit's cache key of a RUN with a secret mount does not
	// cover the secret, so a cached step would hold an earlier run's value.
	args := append([]string{"build", "--no-cache", "--network", "none", "-q", "-t", tag}, flags...)
	testenv.RunEnv(t, append([]string{"DOCKER_BUILDKIT=1"}, env...), docker, append(args, dir)...)
	t.Cleanup(func() { testenv.Run(t, docker, "image", "rm", "-f", tag) })
	return tag
}

// TestCorpusLeaks builds an image with every anti-pattern of the spec, each
// with a value of its own, and checks that the scanner finds each one where
// it landed, through the engine and through a `docker save` archive.
func TestCorpusLeaks(t *testing.T) {
	docker := testenv.Docker(t)
	base := testenv.BusyboxImage(t)
	ctx := context.Background()

	v := map[string]string{}
	for _, n := range []string{"env", "arg", "label", "copied", "run", "b64", "targz", "npm", "docker", "stage"} {
		v[n] = randText(t, 24)
	}
	v["npm"] = "npm_" + randText(t, 36)

	dockerAuth := base64.StdEncoding.EncodeToString([]byte("ci-bot:" + v["docker"]))
	b64 := base64.StdEncoding.EncodeToString([]byte(`{"user":"app","password":"` + v["b64"] + `"}`))
	files := map[string][]byte{
		"Dockerfile": []byte(`FROM ` + base + ` AS keys
RUN --mount=type=secret,id=stage mkdir -p /keys && cp /run/secrets/stage /keys/deploy.key

FROM ` + base + `
ARG ENV_VALUE
ENV API_PASSWORD=$ENV_VALUE
ARG LABEL_VALUE
LABEL org.example.auth=$LABEL_VALUE
ARG TOKEN
RUN echo "building with a token" >/dev/null
COPY secret.txt /app/secret.txt
RUN rm /app/secret.txt
RUN --mount=type=secret,id=run mkdir -p /etc/app && cp /run/secrets/run /etc/app/run.conf
COPY app.yaml /etc/app.yaml
COPY bundle.tar.gz /opt/bundle.tar.gz
COPY npmrc /root/.npmrc
COPY docker-config.json /root/.docker/config.json
COPY --from=keys /keys/deploy.key /etc/ssl/deploy.key
`),
		"secret.txt":         []byte("copied in, removed later\n" + v["copied"] + "\n"),
		"app.yaml":           []byte("name: app\ncredentials: " + b64 + "\n"),
		"bundle.tar.gz":      tarGz(t, []synthEntry{sfile("conf/creds.txt", []byte("user=app\npass="+v["targz"]+"\n"))}),
		"npmrc":              []byte("registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken=" + v["npm"] + "\n"),
		"docker-config.json": []byte("{\n\t\"auths\": {\n\t\t\"registry.example.com\": {\n\t\t\t\"auth\": \"" + dockerAuth + "\"\n\t\t}\n\t}\n}\n"),
	}
	tag := corpusBuild(t, "leaks", files,
		[]string{"ENV_VALUE=" + v["env"], "LABEL_VALUE=" + v["label"], "TOKEN=" + v["arg"],
			"PRIVY_RUN_SECRET=" + v["run"], "PRIVY_STAGE_SECRET=" + v["stage"]},
		"--build-arg", "ENV_VALUE", "--build-arg", "LABEL_VALUE", "--build-arg", "TOKEN",
		"--secret", "id=run,env=PRIVY_RUN_SECRET", "--secret", "id=stage,env=PRIVY_STAGE_SECRET")

	var known []Known
	for n, val := range v {
		known = append(known, Known{Name: n, Value: []byte(val)})
	}
	sc, err := New(Options{Known: known})
	if err != nil {
		t.Fatal(err)
	}

	// Where things are, from the image itself.
	img, err := image.Open(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	layerOf := func(createdBy string) int {
		t.Helper()
		for _, l := range layers {
			if strings.Contains(l.CreatedBy, createdBy) {
				return l.Index
			}
		}
		t.Fatalf("no layer created by %q", createdBy)
		return -1
	}
	envField, argField := "", ""
	for i, e := range cfg.Config.Env {
		if strings.HasPrefix(e, "API_PASSWORD=") {
			envField = fmt.Sprintf("Env[%d]", i)
		}
	}
	for i, h := range cfg.History {
		if strings.Contains(h.CreatedBy, "building with a token") {
			argField = fmt.Sprintf("history[%d].created_by", i)
		}
	}
	if envField == "" || argField == "" {
		t.Fatalf("config lacks the ENV or the RUN: %+v", cfg)
	}

	inLayer := func(what, p, createdBy string, present bool) place {
		return place{Kind: "known", Secret: what, Encoding: "raw", Where: "layer", Layer: layerOf(createdBy), Path: p, Present: present}
	}
	want := []place{
		{Kind: "known", Secret: "env", Encoding: "raw", Where: "config", Field: envField, Layer: -1, Present: true},
		{Kind: "known", Secret: "label", Encoding: "raw", Where: "config", Field: `Labels["org.example.auth"]`, Layer: -1, Present: true},
		{Kind: "known", Secret: "arg", Encoding: "raw", Where: "history", Field: argField, Layer: -1, Present: true},
		inLayer("copied", "app/secret.txt", "COPY secret.txt", false),
		inLayer("run", "etc/app/run.conf", "/etc/app/run.conf", true),
		{Kind: "known", Secret: "b64", Encoding: "base64", Where: "layer", Layer: layerOf("COPY app.yaml"), Path: "etc/app.yaml", Present: true},
		{Kind: "known", Secret: "targz", Encoding: "raw", Where: "layer", Layer: layerOf("COPY bundle.tar.gz"), Path: "opt/bundle.tar.gz",
			Inner: []string{"conf/creds.txt"}, Present: true},
		inLayer("npm", "root/.npmrc", "COPY npmrc", true),
		{Kind: "file", Rule: "npmrc-auth", Where: "layer", Layer: layerOf("COPY npmrc"), Path: "root/.npmrc", Present: true},
		{Kind: "rule", Rule: "npm-token", Where: "layer", Layer: layerOf("COPY npmrc"), Path: "root/.npmrc", Present: true},
		{Kind: "known", Secret: "docker", Encoding: "base64", Where: "layer", Layer: layerOf("COPY docker-config.json"), Path: "root/.docker/config.json", Present: true},
		{Kind: "file", Rule: "docker-config-auth-file", Where: "layer", Layer: layerOf("COPY docker-config.json"), Path: "root/.docker/config.json", Present: true},
		{Kind: "rule", Rule: "docker-config-auth", Where: "layer", Layer: layerOf("COPY docker-config.json"), Path: "root/.docker/config.json", Present: true},
		inLayer("stage", "etc/ssl/deploy.key", "COPY /keys/deploy.key", true),
	}

	archive := filepath.Join(t.TempDir(), "image.tar")
	testenv.Run(t, docker, "save", "-o", archive, tag)
	var first []string
	for _, ref := range []string{tag, "docker-archive:" + archive} {
		res, err := sc.Scan(ctx, ref)
		if err != nil {
			t.Fatalf("scanning %s: %v", ref, err)
		}
		// Lines are checked by the unit tests; here, where.
		var got []string
		have := map[string]bool{}
		for _, f := range res.Findings {
			p := placeOf(f)
			p.Line = 0
			have[p.String()] = true
			got = append(got, p.String())
		}
		for _, w := range want {
			if !have[w.String()] {
				t.Errorf("%s: missing finding %s", ref, w)
			}
		}
		// No value is in the base layer: findings are where values were put.
		for _, f := range res.Findings {
			if f.Where == "layer" && f.Layer == 0 {
				t.Errorf("%s: value %s found in a base layer: %s", ref, f.Secret, placeOf(f))
			}
		}
		if t.Failed() {
			t.Logf("%s findings:\n  %s", ref, strings.Join(got, "\n  "))
		}
		if first == nil {
			first = got
		} else if strings.Join(first, "\n") != strings.Join(got, "\n") {
			t.Errorf("the engine and the archive give different findings:\n%s\n---\n%s",
				strings.Join(first, "\n"), strings.Join(got, "\n"))
		}
	}
}

// TestCorpusClean builds images full of things that look like secrets and
// are not (hashes, UUIDs, public keys, certificates, placeholders, the
// documented examples of well-known formats) on top of busybox, and checks
// that the scanner reports nothing in them.
func TestCorpusClean(t *testing.T) {
	base := testenv.BusyboxImage(t)
	ctx := context.Background()

	var sums, uuids strings.Builder
	for i := range 50 {
		b := []byte(fmt.Sprint("file", i))
		s256, s1 := sha256.Sum256(b), sha1.Sum(b)
		fmt.Fprintf(&sums, "%x  usr/lib/file%d.so\n", s256, i)
		fmt.Fprintf(&sums, "sha1:%x sha256:%x\n", s1, s256)
		u := randBytes(t, 16)
		fmt.Fprintf(&uuids, "id: %x-%x-%x-%x-%x\nrequest_id=%x-%x-%x-%x-%x\n", u[:4], u[4:6], u[6:8], u[8:10], u[10:], u[:4], u[4:6], u[6:8], u[8:10], u[10:])
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "example.test"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ecKey.PublicKey, ecKey)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})
	commit := sha1.Sum([]byte("commit"))
	digest := sha256.Sum256([]byte("digest"))

	files := map[string][]byte{
		"Dockerfile": []byte(`FROM ` + base + `
ENV DB_PASSWORD=changeme APP_TOKEN=${APP_TOKEN} SECRET_KEY_FILE=/run/secrets/key
LABEL org.opencontainers.image.revision=` + hex.EncodeToString(commit[:]) + ` org.example.base.digest=sha256:` + hex.EncodeToString(digest[:]) + `
COPY fixtures/ /usr/share/fixtures/
COPY home/ /root/
RUN echo "db_password: changeme" > /etc/app.yaml && echo "api_key: \${API_KEY}" >> /etc/app.yaml
CMD ["/bin/sh", "-c", "echo password=$DB_PASSWORD"]
`),
		"fixtures/SHA256SUMS": []byte(sums.String()),
		"fixtures/ids.txt":    []byte(uuids.String()),
		"fixtures/cert.pem":   certPEM,
		"fixtures/pub.pem":    pubPEM,
		"fixtures/ca-bundle.crt": append(append([]byte("# Example CA\n"), certPEM...),
			certPEM...),
		"fixtures/go.sum": []byte("golang.org/x/crypto v0.58.0 h1:" + base64.StdEncoding.EncodeToString(digest[:]) + "\n" +
			"golang.org/x/crypto v0.58.0/go.mod h1:" + base64.StdEncoding.EncodeToString(commit[:]) + "=\n"),
		"fixtures/config.env": []byte("DB_PASSWORD=${DB_PASSWORD}\nPASSWORD=changeme\npassword=<password>\n" +
			"token: {{ .Values.token }}\nsecret: $(cat /run/secrets/x)\napi_key = os.environ.get\n" +
			"password_file=/run/secrets/db\ntoken_url=https://auth.example.com/token\n"),
		"fixtures/aws-docs.md": []byte("aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n" +
			"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"),
		"fixtures/jwt.txt":          []byte("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c\n"),
		"fixtures/git.log":          []byte(fmt.Sprintf("commit %x\nMerge: %x\n", commit, commit[:4])),
		"home/.ssh/authorized_keys": ssh.MarshalAuthorizedKey(sshPub),
		"home/.ssh/id_ed25519.pub":  ssh.MarshalAuthorizedKey(sshPub),
		"home/.ssh/known_hosts":     append([]byte("example.test "), ssh.MarshalAuthorizedKey(sshPub)...),
		"home/.npmrc":               []byte("//registry.npmjs.org/:_authToken=${NPM_TOKEN}\n"),
		"home/.docker/config.json":  []byte(`{"auths": {"registry.example.com": {}}, "credsStore": "pass"}` + "\n"),
	}
	tag := corpusBuild(t, "clean", files, nil)

	// Known values that are not in the image: the scanner looks for them
	// (and their encodings) everywhere, busybox included.
	var known []Known
	for i := range 20 {
		known = append(known, Known{Name: fmt.Sprint("k", i), Value: []byte(randText(t, 8+i))})
	}
	sc, err := New(Options{Known: known})
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{base, tag} {
		res, err := sc.Scan(ctx, ref)
		if err != nil {
			t.Fatalf("scanning %s: %v", ref, err)
		}
		if res.Files < 3 {
			t.Errorf("%s: only %d files scanned", ref, res.Files)
		}
		for _, f := range res.Findings {
			t.Errorf("%s: false positive: %s %s (excerpt %q)", ref, f.What(), f.Location(), f.Excerpt)
		}
	}
}

package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// DefaultEngineSocket is where the Docker Engine listens unless DOCKER_HOST
// says otherwise.
const DefaultEngineSocket = "/var/run/docker.sock"

// engineSocket returns the unix socket of the Docker Engine from
// DOCKER_HOST. Only unix sockets are used: the engine's export is read
// locally, never over a network.
func engineSocket() (string, error) {
	h := os.Getenv("DOCKER_HOST")
	if h == "" {
		return DefaultEngineSocket, nil
	}
	if p, ok := strings.CutPrefix(h, "unix://"); ok && p != "" {
		return p, nil
	}
	return "", fmt.Errorf("DOCKER_HOST=%s: only unix:// sockets are supported", h)
}

// engine is a client of the Docker Engine API on a unix socket.
type engine struct {
	socket string
	client *http.Client
}

func newEngine() (*engine, error) {
	sock, err := engineSocket()
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", sock)
		},
		DisableCompression: true,
	}
	// No client timeout: an export is as long as the image; ctx bounds it.
	return &engine{socket: sock, client: &http.Client{Transport: tr}}, nil
}

// get sends GET p and returns the response if its status is 200 OK, or
// the status and the engine's message.
func (e *engine) get(ctx context.Context, p string) (*http.Response, error) {
	u := url.URL{Scheme: "http", Host: "docker", Path: p}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("talking to the Docker Engine at %s: %w", e.socket, err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	var msg struct{ Message string }
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(body, &msg) != nil || msg.Message == "" {
		msg.Message = strings.TrimSpace(string(body))
	}
	return nil, &statusError{code: resp.StatusCode, msg: msg.Message}
}

// TagEngineImage gives the engine's image id the name ref
// (POST /images/{id}/tag), as `docker tag` does.
func TagEngineImage(ctx context.Context, id, ref string) error {
	if strings.Contains(ref, "@") {
		return fmt.Errorf("cannot tag with a digest reference %q", ref)
	}
	repo, tag := ref, "latest"
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		repo, tag = ref[:i], ref[i+1:]
	}
	e, err := newEngine()
	if err != nil {
		return err
	}
	q := url.Values{"repo": {repo}, "tag": {tag}}
	u := url.URL{Scheme: "http", Host: "docker", Path: "/images/" + id + "/tag", RawQuery: q.Encode()}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("talking to the Docker Engine at %s: %w", e.socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("tagging %s as %s: engine answered %s: %s", id, ref, resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// statusError is an error status of the engine's API.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return fmt.Sprintf("engine answered %d: %s", e.code, e.msg) }

// openEngine checks that the engine has the image and returns it as a
// stream of its export (GET /images/{name}/get: a `docker save` tar).
func openEngine(ctx context.Context, ref string) (Image, error) {
	e, err := newEngine()
	if err != nil {
		return nil, fmt.Errorf("opening image %q: %w", ref, err)
	}
	resp, err := e.get(ctx, "/images/"+ref+"/json")
	if err != nil {
		if se := (*statusError)(nil); errors.As(err, &se) && se.code == http.StatusNotFound {
			return nil, fmt.Errorf("opening image %q: %w in the Docker Engine (list its images with: docker image ls; "+
				"or use %s)", ref, ErrNotFound, Schemes)
		}
		return nil, fmt.Errorf("opening image %q: %w", ref, err)
	}
	resp.Body.Close()
	open := func(ctx context.Context) (io.ReadCloser, error) {
		resp, err := e.get(ctx, "/images/"+ref+"/get")
		if err != nil {
			return nil, fmt.Errorf("exporting image %q from the Docker Engine: %w", ref, err)
		}
		return resp.Body, nil
	}
	return &streamImage{ref: ref, open: open}, nil
}

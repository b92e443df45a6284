// Package engine is privy's small client of the Docker Engine API and its
// mapping of a process to the container it runs in.
//
// The server uses it to identify a caller on its unix socket (the pid the
// kernel reports, then the container's labels), and the volume plugin to
// find and signal the containers that mount a volume. It talks to the
// engine only over a unix socket, never over a network, and it promises
// errors callers can test: ErrNoSuchContainer, ErrNotRunning and
// ErrNotInContainer.
package engine

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

// DefaultSocket is where the Docker Engine listens unless DOCKER_HOST says
// otherwise.
const DefaultSocket = "/var/run/docker.sock"

var (
	// ErrNoSuchContainer means the engine knows no container by that id
	// or name.
	ErrNoSuchContainer = errors.New("no such container")

	// ErrNotRunning means the container exists but is not running, so it
	// cannot be signalled.
	ErrNotRunning = errors.New("container is not running")
)

// maxBody bounds what is read of one answer of the engine; an inspect is a
// few kilobytes.
const maxBody = 8 << 20

// Client talks to the Docker Engine API on a unix socket.
type Client struct {
	socket string
	err    error // a DOCKER_HOST that is not a unix socket
	http   *http.Client
}

// New returns a client of the engine listening on socket, a path or a
// unix:// address; "" means DOCKER_HOST, or DefaultSocket if it is unset.
// An address that is not a unix socket (tcp://, ssh://) is refused: every
// call of the client then returns that error.
func New(socket string) *Client {
	sock, err := socketPath(socket, os.Getenv("DOCKER_HOST"))
	var d net.Dialer
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", sock)
		},
		DisableCompression: true,
	}
	// No client timeout: the caller's context bounds each call.
	return &Client{socket: sock, err: err, http: &http.Client{Transport: tr}}
}

// socketPath returns the unix socket path that socket, or else the
// DOCKER_HOST value host, names.
func socketPath(socket, host string) (string, error) {
	addr, what := socket, "engine socket "+socket
	if addr == "" {
		addr, what = host, "DOCKER_HOST="+host
	}
	if addr == "" {
		return DefaultSocket, nil
	}
	if p, ok := strings.CutPrefix(addr, "unix://"); ok {
		addr = p
	} else if strings.Contains(addr, "://") {
		// The engine's API is root on its host: privy reaches it only
		// through a local socket whose permissions guard it.
		return "", fmt.Errorf("%s: only unix sockets are supported (unix:///path or a path), not a network address", what)
	}
	if addr == "" {
		return "", fmt.Errorf("%s: no socket path", what)
	}
	return addr, nil
}

// Container is what the engine reports of a container.
type Container struct {
	ID      string // 64 hex digits
	Name    string // without the leading "/"
	Image   string // the image reference it was created from (its config's Image)
	ImageID string // the image's id, "sha256:…"
	Labels  map[string]string
	Pid     int // of its main process on the host, 0 unless it runs
	Running bool
	Mounts  []Mount
}

// Mount is a filesystem mounted in a container.
type Mount struct {
	Type        string // "volume", "bind", "tmpfs", …
	Name        string // the volume's name, for a volume
	Driver      string // the volume's driver, for a volume
	Source      string // the path on the host
	Destination string // the path in the container
	RW          bool
}

// inspectJSON is the part of GET /containers/{id}/json that Container holds.
type inspectJSON struct {
	ID     string `json:"Id"`
	Name   string
	Image  string
	Config struct {
		Image  string
		Labels map[string]string
	}
	State struct {
		Running bool
		Pid     int
	}
	Mounts []Mount
}

// Ping checks that the engine answers (GET /_ping).
func (c *Client) Ping(ctx context.Context) error {
	resp, err := c.do(ctx, http.MethodGet, "/_ping")
	if err != nil {
		return fmt.Errorf("pinging the Docker Engine: %w", err)
	}
	resp.Body.Close()
	return nil
}

// Inspect returns the container with the id (or name) id
// (GET /containers/{id}/json), or an error wrapping ErrNoSuchContainer.
func (c *Client) Inspect(ctx context.Context, id string) (*Container, error) {
	resp, err := c.do(ctx, http.MethodGet, "/containers/"+url.PathEscape(id)+"/json")
	if err != nil {
		return nil, fmt.Errorf("inspecting container %q: %w", id, err)
	}
	defer resp.Body.Close()
	var j inspectJSON
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(&j); err != nil {
		return nil, fmt.Errorf("inspecting container %q: decoding the engine's answer: %w", id, err)
	}
	return &Container{
		ID:      j.ID,
		Name:    strings.TrimPrefix(j.Name, "/"),
		Image:   j.Config.Image,
		ImageID: j.Image,
		Labels:  j.Config.Labels,
		Pid:     j.State.Pid,
		Running: j.State.Running,
		Mounts:  j.Mounts,
	}, nil
}

// Kill sends signal ("SIGUSR1", "USR1", "10"; "" is the engine's default,
// SIGKILL) to the main process of container id
// (POST /containers/{id}/kill). It returns an error wrapping
// ErrNoSuchContainer or ErrNotRunning when it cannot.
func (c *Client) Kill(ctx context.Context, id, signal string) error {
	p := "/containers/" + url.PathEscape(id) + "/kill"
	if signal != "" {
		p += "?" + url.Values{"signal": {signal}}.Encode()
	}
	resp, err := c.do(ctx, http.MethodPost, p)
	if err != nil {
		return fmt.Errorf("sending %s to container %q: %w", orDefault(signal, "SIGKILL"), id, err)
	}
	resp.Body.Close()
	return nil
}

// UsingVolume returns the running containers that mount the volume named
// volume (GET /containers/json?filters={"volume":[volume]}, then an inspect
// of each). A container that goes away meanwhile is left out.
func (c *Client) UsingVolume(ctx context.Context, volume string) ([]Container, error) {
	filters, err := json.Marshal(map[string][]string{"volume": {volume}})
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, http.MethodGet, "/containers/json?"+url.Values{"filters": {string(filters)}}.Encode())
	if err != nil {
		return nil, fmt.Errorf("listing the containers using volume %q: %w", volume, err)
	}
	defer resp.Body.Close()
	var list []struct {
		ID string `json:"Id"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(&list); err != nil {
		return nil, fmt.Errorf("listing the containers using volume %q: decoding the engine's answer: %w", volume, err)
	}
	var out []Container
	for _, l := range list {
		ct, err := c.Inspect(ctx, l.ID)
		if errors.Is(err, ErrNoSuchContainer) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("listing the containers using volume %q: %w", volume, err)
		}
		out = append(out, *ct)
	}
	return out, nil
}

// do sends a request with no body and returns the response if its status
// is 2xx, or an *apiError with the engine's message.
func (c *Client) do(ctx context.Context, method, pathQuery string) (*http.Response, error) {
	if c.err != nil {
		return nil, c.err
	}
	// Unversioned paths get the engine's own API version: a fixed /v1.NN
	// prefix is refused by engines whose minimum is newer (Docker 29
	// requires 1.44), and the fields read here are the same in all.
	req, err := http.NewRequestWithContext(ctx, method, "http://docker"+pathQuery, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("talking to the Docker Engine at %s: %w", c.socket, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var msg struct{ Message string }
	if json.Unmarshal(body, &msg) != nil || msg.Message == "" {
		msg.Message = strings.TrimSpace(string(body))
	}
	return nil, &apiError{status: resp.StatusCode, message: msg.Message}
}

// apiError is an error status of the engine's API, with its message.
type apiError struct {
	status  int
	message string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("docker engine answered %d %s: %s", e.status, http.StatusText(e.status), e.message)
}

// Is maps the statuses callers act on to the package's sentinels. The
// engine answers 404 for an unknown container and 409 to a kill of a
// stopped one.
func (e *apiError) Is(target error) bool {
	switch target {
	case ErrNoSuchContainer:
		return e.status == http.StatusNotFound
	case ErrNotRunning:
		return e.status == http.StatusConflict
	}
	return false
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

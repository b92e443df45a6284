package build

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/privyhq/privy/internal/scan/image"
)

// tagByAPI tags image id as ref through the Docker Engine API on its unix
// socket (POST /images/{id}/tag), which saves starting a docker CLI. The
// caller falls back to `docker tag` on any error.
func tagByAPI(ctx context.Context, id, ref string) error {
	sock, err := image.EngineSocket()
	if err != nil {
		return err
	}
	if strings.Contains(ref, "@") {
		return fmt.Errorf("cannot tag with a digest reference %q", ref)
	}
	repo, tag := ref, "latest"
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		repo, tag = ref[:i], ref[i+1:]
	}
	var d net.Dialer
	hc := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", sock)
		}},
	}
	q := url.Values{"repo": {repo}, "tag": {tag}}
	u := "http://docker/images/" + url.PathEscape(id) + "/tag?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("engine answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/privyhq/privy/api"
)

// PutProfile stores a new version of a run-time profile (admin only).
func (c *Client) PutProfile(ctx context.Context, p api.Profile) (*api.Profile, error) {
	var out api.Profile
	return &out, c.do(ctx, http.MethodPut, "/v1/profiles/"+url.PathEscape(p.Name), p, &out)
}

// GetProfile returns a profile's definition; version 0 means the current.
func (c *Client) GetProfile(ctx context.Context, name string, version int) (*api.Profile, error) {
	p := "/v1/profiles/" + url.PathEscape(name)
	if version > 0 {
		p += "?version=" + strconv.Itoa(version)
	}
	var out api.Profile
	return &out, c.do(ctx, http.MethodGet, p, nil, &out)
}

// ListProfiles returns every profile's current definition.
func (c *Client) ListProfiles(ctx context.Context) ([]api.Profile, error) {
	var out api.ProfileList
	return out.Profiles, c.do(ctx, http.MethodGet, "/v1/profiles", nil, &out)
}

// DeleteProfile removes a profile (its past versions stay recorded).
func (c *Client) DeleteProfile(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/profiles/"+url.PathEscape(name), nil, nil)
}

// Render returns a profile's files with their values. A client without a
// token, inside a container labelled for the profile, is identified by
// the server through the unix socket.
func (c *Client) Render(ctx context.Context, name string, req api.RenderRequest) (*api.Rendered, error) {
	var out api.Rendered
	return &out, c.do(ctx, http.MethodPost, "/v1/profiles/"+url.PathEscape(name)+"/render", req, &out)
}

// Oneshot uploads per-run files for exactly one mount of a profile and
// returns the ticket that mount presents.
func (c *Client) Oneshot(ctx context.Context, name string, files []api.OneshotFile) (*api.Oneshot, error) {
	var out api.Oneshot
	return &out, c.do(ctx, http.MethodPost, "/v1/profiles/"+url.PathEscape(name)+"/oneshot", api.OneshotRequest{Files: files}, &out)
}

// WatchProfile calls fn for each new version of a secret the profile
// reads, until ctx is done or fn fails. A Change with an empty Path means
// some changes were dropped: render again.
func (c *Client) WatchProfile(ctx context.Context, name string, fn func(api.Change) error) error {
	resp, err := c.send(ctx, http.MethodGet, "/v1/profiles/"+url.PathEscape(name)+"/watch", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 1 {
			var ch api.Change
			if jerr := json.Unmarshal(line, &ch); jerr != nil {
				return jerr
			}
			if ferr := fn(ch); ferr != nil {
				return ferr
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
}

package volume

import "github.com/privyhq/privy/internal/server"

// The server is the plugin's source, and tells it which mounts a secret's
// change concerns.
var _ ProfileSource = (*server.Server)(nil)

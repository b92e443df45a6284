// Package api holds the request and response bodies of privy's HTTP API
// (served under /v1/, documented in docs/api.md). The server and the client
// package share these types so that the two cannot drift apart.
package api

import "time"

// Version is the API version prefix.
const Version = "v1"

// Error codes carried in ErrorBody.Code. Clients map them to sentinel errors.
const (
	CodeInvalid          = "invalid"           // malformed request or path (400)
	CodeUnauthenticated  = "unauthenticated"   // no, unknown, expired or used-up token (401)
	CodePermissionDenied = "permission_denied" // token lacks a capability (403)
	CodeNotFound         = "not_found"         // no such secret, version or token (404)
	CodeConflict         = "conflict"          // a concurrent change won (409)
	CodeTooLarge         = "too_large"         // value over the size limit (413)
	CodeSealed           = "sealed"            // the server has no master key yet (503)
	CodeInternal         = "internal"          // anything else (500)
)

// ErrorBody is the body of every response with status >= 400.
type ErrorBody struct {
	Error Error `json:"error"`
}

// Error describes what went wrong; it never contains a secret value.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
	// Capability and Path are set for permission_denied.
	Capability string `json:"capability,omitempty"`
	Path       string `json:"path,omitempty"`
}

// Status is the body of GET /v1/status.
type Status struct {
	Version      string    `json:"version"`
	Sealed       bool      `json:"sealed"`
	Store        string    `json:"store"`
	KeySource    string    `json:"key_source,omitempty"`
	Started      time.Time `json:"started"`
	MaxValueSize int       `json:"max_value_size"`
	MaxVersions  int       `json:"max_versions"`
}

// PutSecretRequest is the body of PUT /v1/secrets/{path}.
type PutSecretRequest struct {
	Value []byte `json:"value"` // base64 in JSON
}

// SecretMeta describes a secret or one of its versions.
type SecretMeta struct {
	Path    string    `json:"path"`
	Version int       `json:"version"`
	Created time.Time `json:"created"`
}

// Secret is the body of GET /v1/secrets/{path}.
type Secret struct {
	SecretMeta
	Value []byte `json:"value"` // base64 in JSON
}

// SecretList is the body of GET /v1/secrets?prefix=P.
type SecretList struct {
	Secrets []SecretMeta `json:"secrets"`
}

// History is the body of GET /v1/history/{path}.
type History struct {
	Path     string       `json:"path"`
	Versions []SecretMeta `json:"versions"`
}

// CreateTokenRequest is the body of POST /v1/tokens.
type CreateTokenRequest struct {
	Name  string   `json:"name,omitempty"`
	Rules []string `json:"rules"`          // "read,list:app/**"
	TTL   string   `json:"ttl,omitempty"`  // Go duration, e.g. "1h"; empty = no expiry
	Uses  int      `json:"uses,omitempty"` // 0 = unlimited
}

// TokenInfo describes a token without its secret part.
type TokenInfo struct {
	Accessor  string     `json:"accessor"`
	Name      string     `json:"name,omitempty"`
	Rules     []string   `json:"rules"`
	Created   time.Time  `json:"created"`
	Expires   *time.Time `json:"expires,omitempty"`
	UsesLeft  *int       `json:"uses_left,omitempty"` // nil = unlimited
	CreatedBy string     `json:"created_by,omitempty"`
}

// NewToken is the body of the reply to POST /v1/tokens; Token is shown once.
type NewToken struct {
	Token string `json:"token"`
	TokenInfo
}

// TokenList is the body of GET /v1/tokens.
type TokenList struct {
	Tokens []TokenInfo `json:"tokens"`
}

// UnsealRequest is the body of POST /v1/sys/unseal. Exactly one field is set.
type UnsealRequest struct {
	Key        string `json:"key,omitempty"`        // base64 master key
	Passphrase string `json:"passphrase,omitempty"` // for stores initialised with a passphrase
}

// RotateRequest is the body of POST /v1/sys/rotate-master-key. A server
// whose key comes from a key file generates the new key itself and needs
// neither field; one whose key came from PRIVY_MASTER_KEY needs NewKey; one
// unsealed by passphrase needs NewPassphrase.
type RotateRequest struct {
	NewKey        string `json:"new_key,omitempty"` // base64 of 32 bytes
	NewPassphrase string `json:"new_passphrase,omitempty"`
}

// RotateResult is the reply to POST /v1/sys/rotate-master-key.
type RotateResult struct {
	Rewrapped int    `json:"rewrapped"`
	KeyID     string `json:"key_id"`
	// KeyFile is set when the server wrote the new key to its key file.
	KeyFile string `json:"key_file,omitempty"`
}

// AuditVerifyResult is the reply to GET /v1/audit/verify.
type AuditVerifyResult struct {
	OK      bool   `json:"ok"`
	Lines   int    `json:"lines"`
	LastSeq uint64 `json:"last_seq"`
	Head    string `json:"head"`
	Error   string `json:"error,omitempty"`
	Line    int    `json:"line,omitempty"`
}

// SSHPublicKey is the reply to GET /v1/ssh/{path}: the public half of the
// OpenSSH private key stored at path.
type SSHPublicKey struct {
	Path        string `json:"path"`
	Version     int    `json:"version"`
	PublicKey   string `json:"public_key"`  // authorized_keys format
	Fingerprint string `json:"fingerprint"` // SHA256:…
}

// SSHSignRequest is the body of POST /v1/ssh/{path}: data to sign with the
// private key stored at path, as an ssh-agent would. Flags are the agent
// protocol's signature flags (2: rsa-sha2-256, 4: rsa-sha2-512).
type SSHSignRequest struct {
	Data  []byte `json:"data"`
	Flags uint32 `json:"flags,omitempty"`
}

// SSHSignature is the reply to POST /v1/ssh/{path}.
type SSHSignature struct {
	Format string `json:"format"`
	Blob   []byte `json:"blob"`
	Rest   []byte `json:"rest,omitempty"`
}

// BuildHeader carries the id of the build a request is made for; the
// server records it in the request's audit line.
const BuildHeader = "Privy-Build-Id"

// Profile names what one kind of container receives at run time: files
// from secrets, every secret under a prefix, git configuration
// repositories and, optionally, the host's private files. It is the body
// of PUT /v1/profiles/{name} and of GET /v1/profiles/{name}.
type Profile struct {
	Name     string          `json:"name"`
	Files    []ProfileFile   `json:"files,omitempty"`
	Prefixes []ProfilePrefix `json:"prefixes,omitempty"`
	Repos    []ProfileRepo   `json:"repos,omitempty"`
	// HostPrivate includes the host's private files (/etc/privy/private.d)
	// where the volume plugin mounts the profile; the profile's own files
	// override them.
	HostPrivate bool `json:"host_private,omitempty"`
	// Post is a command privy exec runs after placing the files and before
	// the container's command (argv; no shell unless it names one).
	Post []string `json:"post,omitempty"`
	// OnRotate is the signal sent to the container when a secret of this
	// profile is rotated ("SIGHUP"); empty sends none.
	OnRotate string `json:"on_rotate,omitempty"`

	// Set by the server.
	Version int       `json:"version,omitempty"`
	Updated time.Time `json:"updated,omitempty"`
}

// Owner is a file's mode and numeric owner. A zero Mode means 0400; nil
// UID/GID mean root (0).
type Owner struct {
	Mode uint32 `json:"mode,omitempty"`
	UID  *int   `json:"uid,omitempty"`
	GID  *int   `json:"gid,omitempty"`
}

// ProfileFile is one file: Name (a relative path in the mount) receives the
// latest version of the secret at Secret.
type ProfileFile struct {
	Name   string `json:"name"`
	Secret string `json:"secret"`
	Owner
}

// ProfilePrefix delivers every secret under Prefix (which ends in '/'):
// the file for secret Prefix+"a/b" is Dir+"/a/b".
type ProfilePrefix struct {
	Prefix string `json:"prefix"`
	Dir    string `json:"dir,omitempty"`
	Owner
}

// ProfileRepo is a git configuration repository: its files (all of them,
// or those Files lists) are placed under Dir. Credentials are store paths.
type ProfileRepo struct {
	URL string `json:"url"`
	Ref string `json:"ref,omitempty"` // branch or tag; empty = the remote's HEAD
	Dir string `json:"dir,omitempty"`
	// Files copies only these (Src in the repo → Dest under Dir; a Src
	// ending in '/' copies a directory). Empty copies every file.
	Files []RepoFile `json:"files,omitempty"`

	SSHKey     string `json:"ssh_key,omitempty"`     // store path of an OpenSSH private key
	KnownHosts string `json:"known_hosts,omitempty"` // store path of known_hosts lines for ssh:// URLs
	Username   string `json:"username,omitempty"`    // for https:// URLs
	Password   string `json:"password,omitempty"`    // store path of the https password or token
	// AgeIdentity is the store path of an age identity: files ending in
	// ".age" are decrypted with it and placed without the suffix.
	AgeIdentity string `json:"age_identity,omitempty"`
	Owner
}

// RepoFile is one file or directory copied out of a ProfileRepo.
type RepoFile struct {
	Src  string `json:"src"`
	Dest string `json:"dest,omitempty"` // default: Src
	Mode uint32 `json:"mode,omitempty"` // default: the repo's Owner.Mode
}

// ProfileList is the body of GET /v1/profiles.
type ProfileList struct {
	Profiles []Profile `json:"profiles"`
}

// Rendered is a profile with its values: the reply to
// POST /v1/profiles/{name}/render. Every secret read is audited.
type Rendered struct {
	Profile string         `json:"profile"`
	Version int            `json:"version"`
	Files   []RenderedFile `json:"files"`
	Repos   []RenderedRepo `json:"repos,omitempty"`

	HostPrivate bool     `json:"host_private,omitempty"`
	Post        []string `json:"post,omitempty"`
	OnRotate    string   `json:"on_rotate,omitempty"`
}

// RenderedFile is one file to place. Secret and Version are empty for a
// per-run (one-shot) file.
type RenderedFile struct {
	Name    string `json:"name"`
	Secret  string `json:"secret,omitempty"`
	Version int    `json:"version,omitempty"`
	Mode    uint32 `json:"mode"`
	UID     int    `json:"uid"`
	GID     int    `json:"gid"`
	Value   []byte `json:"value"` // base64 in JSON
}

// RenderedRepo is a ProfileRepo with its credentials' values.
type RenderedRepo struct {
	ProfileRepo
	SSHKeyValue      []byte `json:"ssh_key_value,omitempty"`
	KnownHostsValue  []byte `json:"known_hosts_value,omitempty"`
	PasswordValue    []byte `json:"password_value,omitempty"`
	AgeIdentityValue []byte `json:"age_identity_value,omitempty"`
}

// RenderRequest is the optional body of POST /v1/profiles/{name}/render.
type RenderRequest struct {
	// Oneshot is a ticket from POST /v1/profiles/{name}/oneshot: its files
	// are added (overriding the profile's) and the server forgets them.
	Oneshot string `json:"oneshot,omitempty"`
}

// OneshotRequest is the body of POST /v1/profiles/{name}/oneshot: per-run
// files for exactly one mount of the profile.
type OneshotRequest struct {
	Files []OneshotFile `json:"files"`
}

// OneshotFile is one per-run file.
type OneshotFile struct {
	Name  string `json:"name"`
	Mode  uint32 `json:"mode,omitempty"`
	Value []byte `json:"value"`
}

// Oneshot is the reply to POST /v1/profiles/{name}/oneshot.
type Oneshot struct {
	Ticket  string    `json:"ticket"`
	Expires time.Time `json:"expires"`
}

// Change reports a new version of a secret: one line of the stream
// GET /v1/profiles/{name}/watch sends (JSON lines).
type Change struct {
	Path    string `json:"path"`
	Version int    `json:"version"`
}

// RequestIDHeader carries the id a client gives one logical write; a
// server that sees the id again from the same caller replays the recorded
// reply instead of writing twice (docs/api.md, "Retries and idempotency").
const RequestIDHeader = "Privy-Request-Id"

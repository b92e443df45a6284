package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/privyhq/privy/internal/audit"
	"github.com/privyhq/privy/internal/build"
	"github.com/privyhq/privy/internal/engine"
	"github.com/privyhq/privy/internal/paths"
	"github.com/privyhq/privy/internal/seal"
	"github.com/privyhq/privy/internal/server"
	"github.com/privyhq/privy/internal/store/memstore"
	"github.com/privyhq/privy/internal/volume"
)

// keyOptions are the flags that say where the master key comes from.
type keyOptions struct {
	keyFile        string
	passphraseFile string
}

func (k *keyOptions) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&k.keyFile, "key-file", "", "master key file (mode 0600; default DATA_DIR/master.key)")
	cmd.Flags().StringVar(&k.passphraseFile, "passphrase-file", "", "derive the master key from the passphrase in this file (Argon2id)")
}

func (a *app) initCommand() *cobra.Command {
	var dataDir string
	var ko keyOptions
	var passphrase, login bool
	var so storeOptions
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the store and its master key, and print the root token once",
		Long: `Create the embedded store in the data directory, a master key, and a root
token (printed once on stdout). The master key comes from, in this order:
PRIVY_MASTER_KEY (base64 of 32 bytes, for CI), --passphrase-file or
--passphrase (prompt), or a new random key written to --key-file
(default DATA_DIR/master.key, mode 0600).`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dataDir == "" {
				dataDir = paths.DataDir()
			}
			opts := server.InitOptions{}
			switch env := os.Getenv("PRIVY_MASTER_KEY"); {
			case env != "":
				raw, err := seal.ParseKey(env)
				if err != nil {
					return fmt.Errorf("PRIVY_MASTER_KEY: %w", err)
				}
				opts.RawKey = raw
			case ko.passphraseFile != "":
				p, err := seal.ReadPassphraseFile(ko.passphraseFile)
				if err != nil {
					return err
				}
				opts.Passphrase = p
			case passphrase:
				p, err := seal.PromptPassphrase("New passphrase for the privy store: ", true)
				if err != nil {
					return err
				}
				opts.Passphrase = p
			default:
				opts.KeyFile = ko.keyFile
				if opts.KeyFile == "" {
					opts.KeyFile = paths.KeyFile(dataDir)
				}
			}
			if err := os.MkdirAll(dataDir, 0o700); err != nil {
				return fmt.Errorf("creating data directory: %w", err)
			}
			if so.spec == "" {
				so.spec = "bolt:" + paths.StoreFile(dataDir)
			}
			st, name, err := openStore(cmd.Context(), so)
			if err != nil {
				return err
			}
			defer st.Close()
			tok, err := server.Init(cmd.Context(), st, opts)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, tok)
			fmt.Fprintf(a.stderr, "privy: initialised store %s\n", name)
			if opts.KeyFile != "" {
				fmt.Fprintf(a.stderr, "privy: master key in %s (mode 0600); back it up somewhere safe\n", opts.KeyFile)
			}
			fmt.Fprintln(a.stderr, "privy: the line on stdout is the root token; it is not shown again")
			if login {
				f := paths.TokenFile()
				if err := writeTokenFile(f, tok); err != nil {
					return err
				}
				fmt.Fprintf(a.stderr, "privy: root token saved to %s\n", f)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "where the store lives (default $PRIVY_DATA_DIR, /var/lib/privy as root)")
	ko.register(cmd)
	cmd.Flags().BoolVar(&passphrase, "passphrase", false, "prompt for a passphrase instead of generating a key file")
	cmd.Flags().BoolVar(&login, "login", false, "also save the root token to the CLI's token file (mode 0600)")
	so.register(cmd, "bolt:DATA_DIR/privy.db")
	return cmd
}

type serverFlags struct {
	dev          bool
	dataDir      string
	store        storeOptions
	socket       string
	listen       string
	tls          server.TLSOptions
	keys         keyOptions
	auditLog     string
	auditSync    string
	maxValueSize int
	maxVersions  int

	dockerPlugin string // volume plugin name or socket path
	volumeRoot   string
	hostPrivate  string
	docker       string // Docker Engine socket for container identity; "none" for none
}

func (a *app) serverCommand() *cobra.Command {
	var f serverFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Serve the privy API on a unix socket (and optionally TLS)",
		Long: `Serve the privy API under /v1/ on a unix socket (mode 0660), and with
--listen on TCP with TLS. With --dev the store lives in memory with a
random key and the root token is printed: for trying things out only.

The master key comes from --key-file, PRIVY_MASTER_KEY, --passphrase-file,
or DATA_DIR/master.key, in that order; with none the server starts sealed
and waits for ` + "`privy unseal`" + `.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runServer(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.dev, "dev", false, "in-memory store with a random key; prints a root token")
	fl.StringVar(&f.dataDir, "data-dir", "", "data directory (default $PRIVY_DATA_DIR, /var/lib/privy as root)")
	f.store.register(cmd, "bolt:DATA_DIR/privy.db")
	fl.StringVar(&f.socket, "socket", "", "unix socket path (default $PRIVY_ADDR if it is a path, else /run/privy/privy.sock as root)")
	fl.StringVar(&f.listen, "listen", "", "also listen on this TCP host:port (TLS required)")
	fl.StringVar(&f.tls.CertFile, "tls-cert", "", "TLS certificate (PEM)")
	fl.StringVar(&f.tls.KeyFile, "tls-key", "", "TLS private key (PEM)")
	fl.StringVar(&f.tls.ClientCAFile, "tls-client-ca", "", "require client certificates signed by this CA (mTLS)")
	fl.BoolVar(&f.tls.InsecureLoopback, "insecure-loopback", false, "allow plaintext HTTP on a loopback --listen address (testing only)")
	f.keys.register(cmd)
	fl.StringVar(&f.auditLog, "audit-log", "", "audit log file (default DATA_DIR/audit.log)")
	fl.StringVar(&f.auditSync, "audit-sync", "batch", "audit durability: batch (fsync per group commit) or none")
	fl.IntVar(&f.maxValueSize, "max-value-size", server.DefaultMaxValueSize, "largest secret value in bytes (at most 64 MiB)")
	fl.IntVar(&f.maxVersions, "max-versions", 10, "versions kept per secret")
	fl.StringVar(&f.dockerPlugin, "docker-plugin", "", "also serve the Docker volume plugin NAME on /run/docker/plugins/NAME.sock (or a socket path)")
	fl.StringVar(&f.volumeRoot, "volume-root", volume.DefaultRoot, "where the volume plugin mounts each container's tmpfs")
	fl.StringVar(&f.hostPrivate, "host-private", build.DefaultPrivateDir, "the host's private files, for profiles with host_private")
	fl.StringVar(&f.docker, "docker", "", "Docker Engine socket, to identify tokenless containers by their privy.profile label and signal them on rotation (default $DOCKER_HOST or /var/run/docker.sock; none to turn off)")
	return cmd
}

func (a *app) runServer(ctx context.Context, f serverFlags) (err error) {
	logger := slog.New(slog.NewTextHandler(a.stderr, nil))
	// The live heap is a few MiB, so the default GOGC=100 collects very
	// often under load; 400 trades a few MiB for far fewer cycles.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if err := server.Harden(); err != nil {
		logger.Warn("hardening", "err", err)
	}
	if f.dataDir == "" {
		f.dataDir = paths.DataDir()
	}
	if f.socket == "" {
		// A PRIVY_ADDR that names a socket is where the CLI will look, so
		// the server listens there too.
		// Of a list (clients fail over along it), the first entry.
		v, _, _ := strings.Cut(os.Getenv("PRIVY_ADDR"), ",")
		if v != "" && !strings.Contains(v, "://") {
			f.socket = v
		} else if strings.HasPrefix(v, "unix://") {
			f.socket = strings.TrimPrefix(v, "unix://")
		} else {
			f.socket = paths.Socket()
		}
	}
	if f.maxVersions < 1 {
		return usageError{errors.New("--max-versions must be at least 1")}
	}
	if f.maxValueSize < 1 || f.maxValueSize > server.MaxMaxValueSize {
		return usageError{fmt.Errorf("--max-value-size must be between 1 and %d", server.MaxMaxValueSize)}
	}
	syncMode := audit.SyncBatch
	switch f.auditSync {
	case "batch":
	case "none":
		syncMode = audit.SyncNone
	default:
		return usageError{fmt.Errorf("--audit-sync %q: use batch or none", f.auditSync)}
	}
	if err := checkListen(f.listen, f.tls); err != nil {
		return err
	}

	cfg := server.Config{Logger: logger, MaxValueSize: f.maxValueSize, MaxVersions: f.maxVersions}
	var rootToken string
	if f.dev {
		cfg.Store, cfg.StoreName = memstore.New(), "mem:"
		dir, err := os.MkdirTemp("", "privy-dev-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if f.auditLog == "" {
			f.auditLog = filepath.Join(dir, "audit.log")
		}
		raw, err := seal.GenerateKey()
		if err != nil {
			return err
		}
		if rootToken, err = server.Init(ctx, cfg.Store, server.InitOptions{RawKey: raw}); err != nil {
			return err
		}
		if cfg.Key, err = seal.NewKey(raw); err != nil {
			return err
		}
		clear(raw)
		cfg.KeySource = "dev"
	} else {
		if f.store.spec == "" {
			f.store.spec = "bolt:" + paths.StoreFile(f.dataDir)
			if _, err := os.Stat(paths.StoreFile(f.dataDir)); errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("no store at %s: %w", paths.StoreFile(f.dataDir), server.ErrNotInitialized)
			}
		}
		if cfg.Store, cfg.StoreName, err = openStore(ctx, f.store); err != nil {
			return err
		}
		if f.auditLog == "" {
			f.auditLog = paths.AuditLog(f.dataDir)
		}
		if err := loadServerKey(ctx, &cfg, f); err != nil {
			cfg.Store.Close()
			return err
		}
	}
	defer cfg.Store.Close()

	alog, err := audit.Open(f.auditLog, audit.WithSync(syncMode))
	if err != nil {
		return fmt.Errorf("opening audit log: %w", err)
	}
	defer alog.Close()
	cfg.Audit, cfg.AuditFile = alog, f.auditLog

	var eng *engine.Client
	if f.docker != "none" {
		eng = engine.New(f.docker)
		if err := eng.Ping(ctx); err != nil {
			logger.Warn("no Docker Engine: tokenless containers are not identified and rotations signal no container", "err", err)
			eng = nil
		} else {
			cfg.Containers = server.EngineIdentifier(eng)
		}
	}

	srv, err := server.New(ctx, cfg)
	if err != nil {
		return err
	}
	if f.dockerPlugin != "" {
		stop, err := servePlugin(ctx, srv, eng, f, logger)
		if err != nil {
			return err
		}
		defer stop()
	}
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ln, err := server.ListenUnix(f.socket)
	if err != nil {
		return err
	}
	lns = append(lns, ln)
	defer os.Remove(f.socket)
	if f.listen != "" {
		tl, err := server.ListenTCP(f.listen, f.tls)
		if err != nil {
			return err
		}
		lns = append(lns, tl)
	}
	logger.Info("privy server listening", "socket", f.socket, "tcp", f.listen, "store", cfg.StoreName,
		"audit_log", f.auditLog, "sealed", srv.Sealed())
	if srv.Sealed() {
		logger.Warn("the store is sealed; run `privy unseal` to give the server its master key")
	}
	if rootToken != "" {
		fmt.Fprintf(a.stdout, "Root token (dev mode, in-memory store): %s\n", rootToken)
		fmt.Fprintf(a.stdout, "export PRIVY_ADDR=%s\n", f.socket)
	}
	err = srv.Serve(ctx, lns...)
	logger.Info("privy server stopped")
	return err
}

// checkListen refuses a --listen without TLS (other than plaintext on
// loopback with --insecure-loopback) before anything is opened or created;
// server.ListenTCP checks the same again when it listens.
func checkListen(addr string, t server.TLSOptions) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usageError{fmt.Errorf("--listen %q: %w (want host:port)", addr, err)}
	}
	switch {
	case (t.CertFile == "") != (t.KeyFile == ""):
		return usageError{errors.New("TLS needs both --tls-cert and --tls-key")}
	case t.CertFile != "":
		return nil
	case !t.InsecureLoopback:
		return usageError{fmt.Errorf("--listen %s needs TLS: give --tls-cert and --tls-key (or --insecure-loopback on 127.0.0.1 for local testing)", addr)}
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return usageError{fmt.Errorf("--insecure-loopback allows only loopback addresses, not %q; give --tls-cert and --tls-key", host)}
	}
	return nil
}

// loadServerKey finds the master key for a persistent store.
func loadServerKey(ctx context.Context, cfg *server.Config, f serverFlags) error {
	defaultKey := paths.KeyFile(f.dataDir)
	switch env := os.Getenv("PRIVY_MASTER_KEY"); {
	case f.keys.keyFile != "":
		k, err := server.OpenKeyFile(ctx, cfg.Store, f.keys.keyFile)
		if err != nil {
			return err
		}
		cfg.Key, cfg.KeyFile, cfg.KeySource = k, f.keys.keyFile, "file"
	case env != "":
		// Keep the key out of the environment of anything we start.
		os.Unsetenv("PRIVY_MASTER_KEY")
		raw, err := seal.ParseKey(env)
		if err != nil {
			return fmt.Errorf("PRIVY_MASTER_KEY: %w", err)
		}
		k, err := seal.NewKey(raw)
		clear(raw)
		if err != nil {
			return err
		}
		cfg.Key, cfg.KeySource = k, "env"
	case f.keys.passphraseFile != "":
		p, err := seal.ReadPassphraseFile(f.keys.passphraseFile)
		if err != nil {
			return err
		}
		k, err := server.KeyFromPassphrase(ctx, cfg.Store, p)
		clear(p)
		if err != nil {
			return err
		}
		cfg.Key, cfg.KeySource = k, "passphrase"
	default:
		if _, err := os.Stat(defaultKey); err == nil {
			k, err := server.OpenKeyFile(ctx, cfg.Store, defaultKey)
			if err != nil {
				return err
			}
			cfg.Key, cfg.KeyFile, cfg.KeySource = k, defaultKey, "file"
		}
		// No key anywhere: start sealed.
	}
	return nil
}

// servePlugin serves the Docker volume plugin with srv as its source. The
// returned stop unmounts and wipes every live mount.
func servePlugin(ctx context.Context, srv *server.Server, eng *engine.Client, f serverFlags, logger *slog.Logger) (stop func(), err error) {
	sock := f.dockerPlugin
	if !strings.Contains(sock, "/") {
		sock = filepath.Join(volume.PluginDir, sock+".sock")
	}
	d, err := volume.New(volume.Config{
		Source:         srv,
		Root:           f.volumeRoot,
		HostPrivateDir: f.hostPrivate,
		StateFile:      filepath.Join(f.volumeRoot, "volumes.json"),
		Engine:         eng,
		Logger:         logger,
	})
	if err != nil {
		return nil, err
	}
	ln, err := server.ListenUnix(sock)
	if err != nil {
		d.Close()
		return nil, err
	}
	go func() {
		if err := d.Serve(ln); err != nil && ctx.Err() == nil {
			logger.Error("volume plugin stopped", "err", err)
		}
	}()
	logger.Info("docker volume plugin listening", "socket", sock, "volume_root", f.volumeRoot)
	return func() {
		ln.Close()
		os.Remove(sock)
		if err := d.Close(); err != nil {
			logger.Error("closing volume plugin", "err", err)
		}
	}, nil
}

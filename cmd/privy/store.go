package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/privyhq/privy/internal/store"
	"github.com/privyhq/privy/internal/store/boltstore"
	"github.com/privyhq/privy/internal/store/etcdstore"
	"github.com/privyhq/privy/internal/store/memstore"
)

// storeOptions are the flags that choose and reach the store.
type storeOptions struct {
	spec       string
	etcdCA     string
	etcdCert   string
	etcdKey    string
	etcdPrefix string
}

func (o *storeOptions) register(cmd *cobra.Command, def string) {
	fl := cmd.Flags()
	fl.StringVar(&o.spec, "store", "", "store backend: bolt:PATH (default "+def+"), etcd://HOST:PORT[,HOST:PORT…] (several servers share it) or mem:")
	fl.StringVar(&o.etcdCA, "etcd-ca", "", "CA certificate (PEM) that signed etcd's server certificates; turns on TLS to etcd")
	fl.StringVar(&o.etcdCert, "etcd-cert", "", "client certificate (PEM) for etcd")
	fl.StringVar(&o.etcdKey, "etcd-key", "", "client key (PEM) for etcd")
	fl.StringVar(&o.etcdPrefix, "etcd-prefix", etcdstore.DefaultPrefix, "key prefix of this privy's state in etcd")
}

// openStore is the one place that knows every store backend. spec is
// "bolt:PATH" (embedded), "etcd://HOST:PORT,…" (distributed) or "mem:"
// (in memory, lost at exit).
func openStore(ctx context.Context, o storeOptions) (store.Store, string, error) {
	spec := o.spec
	if rest, ok := strings.CutPrefix(spec, "etcd://"); ok {
		return openEtcd(ctx, rest, o)
	}
	if o.etcdCA != "" || o.etcdCert != "" || o.etcdKey != "" {
		return nil, "", usageError{errors.New("--etcd-ca, --etcd-cert and --etcd-key go with --store etcd://…")}
	}
	kind, arg, _ := strings.Cut(spec, ":")
	switch kind {
	case "bolt":
		if arg == "" {
			return nil, "", usageError{errors.New("--store bolt: needs a file path, e.g. bolt:/var/lib/privy/privy.db")}
		}
		s, err := boltstore.Open(arg)
		if err != nil {
			return nil, "", err
		}
		return s, "bolt:" + arg, nil
	case "mem":
		return memstore.New(), "mem:", nil
	}
	return nil, "", usageError{fmt.Errorf("unknown store %q: use bolt:PATH, etcd://HOST:PORT[,HOST:PORT…] or mem:", spec)}
}

func openEtcd(ctx context.Context, hosts string, o storeOptions) (store.Store, string, error) {
	scheme := "http://"
	var tc *tls.Config
	if o.etcdCA != "" || o.etcdCert != "" || o.etcdKey != "" {
		if (o.etcdCert == "") != (o.etcdKey == "") {
			return nil, "", usageError{errors.New("--etcd-cert and --etcd-key go together")}
		}
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
		if o.etcdCA != "" {
			pem, err := os.ReadFile(o.etcdCA)
			if err != nil {
				return nil, "", fmt.Errorf("reading --etcd-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, "", fmt.Errorf("--etcd-ca %s holds no PEM certificate", o.etcdCA)
			}
			tc.RootCAs = pool
		}
		if o.etcdCert != "" {
			c, err := tls.LoadX509KeyPair(o.etcdCert, o.etcdKey)
			if err != nil {
				return nil, "", fmt.Errorf("loading the etcd client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{c}
		}
		scheme = "https://"
	}
	var eps []string
	for _, h := range strings.Split(hosts, ",") {
		h = strings.TrimSuffix(strings.TrimSpace(h), "/")
		if h == "" || strings.ContainsAny(h, "/@?#") {
			return nil, "", usageError{fmt.Errorf("--store etcd://%s: give HOST:PORT[,HOST:PORT…]", hosts)}
		}
		eps = append(eps, scheme+h)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := etcdstore.Open(ctx, etcdstore.Config{Endpoints: eps, Prefix: o.etcdPrefix, TLS: tc})
	if err != nil {
		return nil, "", err
	}
	return s, "etcd:" + strings.Join(eps, ",") + o.etcdPrefix, nil
}

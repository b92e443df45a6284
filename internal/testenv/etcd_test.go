package testenv

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// etcdPut writes key=value through a member's JSON gateway.
func etcdPut(m *EtcdMember, key, value string) error {
	_, err := etcdCall(m, "/v3/kv/put", map[string]string{
		"key":   base64.StdEncoding.EncodeToString([]byte(key)),
		"value": base64.StdEncoding.EncodeToString([]byte(value)),
	})
	return err
}

// etcdGet reads key through a member's JSON gateway (a linearizable read).
func etcdGet(m *EtcdMember, key string) (string, error) {
	body, err := etcdCall(m, "/v3/kv/range", map[string]string{
		"key": base64.StdEncoding.EncodeToString([]byte(key)),
	})
	if err != nil {
		return "", err
	}
	var r struct {
		Kvs []struct {
			Value string `json:"value"`
		} `json:"kvs"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return "", err
	}
	if len(r.Kvs) != 1 {
		return "", fmt.Errorf("range %s: got %d keys, want 1", key, len(r.Kvs))
	}
	v, err := base64.StdEncoding.DecodeString(r.Kvs[0].Value)
	return string(v), err
}

func etcdCall(m *EtcdMember, path string, req any) ([]byte, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	resp, err := m.http.Post(m.ClientURL+path, "application/json", strings.NewReader(string(b)))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s on %s: %s %s", path, m.Name, resp.Status, body)
	}
	return body, nil
}

// eventually retries f for up to 10 seconds, for calls that may meet an
// election.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestEtcdSingleMember(t *testing.T) {
	var pid int
	t.Run("serve", func(t *testing.T) {
		c := Etcd(t, 1)
		if eps := c.Endpoints(); len(eps) != 1 || !strings.HasPrefix(eps[0], "http://127.0.0.1:") {
			t.Errorf("Endpoints: got %q, want one http://127.0.0.1 URL", eps)
		}
		if got := c.Leader(t); got != 0 {
			t.Errorf("Leader: got %d, want 0", got)
		}
		m := c.Members[0]
		if err := etcdPut(m, "k", "v"); err != nil {
			t.Fatal(err)
		}
		if got, err := etcdGet(m, "k"); err != nil || got != "v" {
			t.Errorf("get k: got %q, %v; want v", got, err)
		}
		pid = m.Pid()
		if pid == 0 {
			t.Fatal("Pid of a running member: got 0")
		}
	})
	if pid == 0 {
		return // skipped or failed above
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("etcd pid %d after its test ended: got %v, want it gone (ESRCH)", pid, err)
	}
}

func TestEtcdThreeMembers(t *testing.T) {
	start := time.Now()
	c := Etcd(t, 3)
	t.Logf("three members healthy after %v", time.Since(start))
	if got := len(c.Endpoints()); got != 3 {
		t.Fatalf("Endpoints: got %d, want 3", got)
	}
	leader := c.Leader(t)
	if err := etcdPut(c.Members[leader], "before", "1"); err != nil {
		t.Fatal(err)
	}

	// Killing the leader leaves a quorum that elects another and serves.
	killed := c.Members[leader]
	start = time.Now()
	killed.Kill()
	if killed.Running() {
		t.Fatal("Running after Kill: got true")
	}
	next := c.Leader(t)
	t.Logf("new leader %s after %v", c.Members[next].Name, time.Since(start))
	if next == leader {
		t.Fatalf("Leader after killing member %d: got the killed member", leader)
	}
	eventually(t, "put after killing the leader", func() error { return etcdPut(c.Members[next], "after", "2") })
	for i, m := range c.Members {
		if i == leader {
			continue
		}
		if got, err := etcdGet(m, "before"); err != nil || got != "1" {
			t.Errorf("get before from %s: got %q, %v; want 1", m.Name, got, err)
		}
	}

	// The killed member comes back with its data and catches up.
	killed.Start(t)
	c.WaitHealthy(t, 20*time.Second)
	eventually(t, "get from the restarted member", func() error {
		got, err := etcdGet(killed, "after")
		if err == nil && got != "2" {
			err = fmt.Errorf("got %q, want 2", got)
		}
		return err
	})

	// A paused follower does not stop the others; resumed, it catches up.
	leader = c.Leader(t)
	follower := c.Members[(leader+1)%3]
	follower.Pause(t)
	eventually(t, "put with a paused follower", func() error { return etcdPut(c.Members[leader], "paused", "3") })
	follower.Resume(t)
	c.WaitHealthy(t, 20*time.Second)
	eventually(t, "get from the resumed follower", func() error {
		got, err := etcdGet(follower, "paused")
		if err == nil && got != "3" {
			err = fmt.Errorf("got %q, want 3", got)
		}
		return err
	})
}

func TestEtcdTLS(t *testing.T) {
	c := EtcdTLS(t, 1)
	m := c.Members[0]
	if !strings.HasPrefix(m.ClientURL, "https://127.0.0.1:") || c.ClientTLS == nil {
		t.Fatalf("EtcdTLS: got URL %s and client TLS %v, want https and a configuration", m.ClientURL, c.ClientTLS)
	}
	if err := etcdPut(m, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if got, err := etcdGet(m, "k"); err != nil || got != "v" {
		t.Errorf("get k over TLS: got %q, %v; want v", got, err)
	}
	// A client without the client certificate is refused.
	noCert := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.ClientTLS.RootCAs}}}
	if resp, err := noCert.Get(m.ClientURL + "/health"); err == nil {
		resp.Body.Close()
		t.Errorf("/health without a client certificate: got %s, want the handshake refused", resp.Status)
	}
}

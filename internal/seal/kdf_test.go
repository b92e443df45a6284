package seal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// fastParams are cheap Argon2id parameters so tests stay quick.
func fastParams(salt string) KDFParams {
	return KDFParams{Salt: []byte(salt), Time: 1, MemoryKiB: 64, Threads: 1}
}

func TestDeriveKey(t *testing.T) {
	pass := []byte("correct horse battery staple")
	base := fastParams("salt-one-16bytes")
	first, err := DeriveKey(pass, base)
	if err != nil {
		t.Fatalf("DeriveKey: %v", err)
	}
	if len(first) != KeySize {
		t.Fatalf("DeriveKey returned %d bytes, want %d", len(first), KeySize)
	}
	tests := []struct {
		name string
		pass []byte
		p    KDFParams
		same bool
	}{
		{"same input", pass, base, true},
		{"other salt", pass, fastParams("salt-two-16bytes"), false},
		{"other passphrase", []byte("correct horse battery stapler"), base, false},
		{"other time", pass, KDFParams{Salt: base.Salt, Time: 2, MemoryKiB: 64, Threads: 1}, false},
		{"other memory", pass, KDFParams{Salt: base.Salt, Time: 1, MemoryKiB: 128, Threads: 1}, false},
		{"other threads", pass, KDFParams{Salt: base.Salt, Time: 1, MemoryKiB: 64, Threads: 2}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DeriveKey(tt.pass, tt.p)
			if err != nil {
				t.Fatalf("DeriveKey: %v", err)
			}
			if same := bytes.Equal(got, first); same != tt.same {
				t.Errorf("same key as the first derivation = %v, want %v", same, tt.same)
			}
		})
	}
}

func TestDeriveKeyRefuses(t *testing.T) {
	pass := []byte("hunter2hunter2")
	ok := fastParams("0123456789abcdef")
	with := func(f func(*KDFParams)) KDFParams {
		p := ok
		f(&p)
		return p
	}
	tests := []struct {
		name string
		pass []byte
		p    KDFParams
	}{
		{"empty passphrase", nil, ok},
		{"zero params", pass, KDFParams{}},
		{"no salt", pass, with(func(p *KDFParams) { p.Salt = nil })},
		{"short salt", pass, with(func(p *KDFParams) { p.Salt = []byte("1234567") })},
		{"zero time", pass, with(func(p *KDFParams) { p.Time = 0 })},
		{"zero memory", pass, with(func(p *KDFParams) { p.MemoryKiB = 0 })},
		{"zero threads", pass, with(func(p *KDFParams) { p.Threads = 0 })},
		{"huge memory", pass, with(func(p *KDFParams) { p.MemoryKiB = maxMemoryKiB + 1 })},
		{"huge time", pass, with(func(p *KDFParams) { p.Time = maxTime + 1 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DeriveKey(tt.pass, tt.p)
			if err == nil {
				t.Fatal("DeriveKey succeeded, want an error")
			}
			if len(tt.pass) > 0 && strings.Contains(err.Error(), string(tt.pass)) {
				t.Errorf("error %q contains the passphrase", err)
			}
		})
	}
}

func TestNewKDFParams(t *testing.T) {
	p1, err := NewKDFParams()
	if err != nil {
		t.Fatal(err)
	}
	p2, err := NewKDFParams()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(p1.Time, p1.MemoryKiB, p1.Threads), "3 65536 2"; got != want {
		t.Errorf("time, memory, threads = %s, want %s", got, want)
	}
	if len(p1.Salt) != 16 {
		t.Errorf("salt is %d bytes, want 16", len(p1.Salt))
	}
	if bytes.Equal(p1.Salt, p2.Salt) {
		t.Error("two NewKDFParams share a salt")
	}
	if err := p1.validate(); err != nil {
		t.Errorf("default params are invalid: %v", err)
	}
}

func TestKDFParamsJSON(t *testing.T) {
	p := fastParams("0123456789abcdef")
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"salt":"MDEyMzQ1Njc4OWFiY2RlZg==","time":1,"memory_kib":64,"threads":1}`; got != want {
		t.Errorf("json = %s, want %s", got, want)
	}
	var back KDFParams
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Salt, p.Salt) || back.Time != p.Time || back.MemoryKiB != p.MemoryKiB || back.Threads != p.Threads {
		t.Errorf("round trip = %+v, want %+v", back, p)
	}
}

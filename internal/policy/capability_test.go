package policy_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/privyhq/privy/internal/policy"
)

func TestCapabilityString(t *testing.T) {
	tests := []struct {
		c    policy.Capability
		want string
	}{
		{0, "none"},
		{policy.Read, "read"},
		{policy.List | policy.Read, "read,list"},
		{policy.Admin | policy.Write, "write,admin"},
		{policy.All, "read,list,write,delete,admin"},
		{1 << 6, "0x40"},
		{policy.Delete | 1<<7, "delete,0x80"},
	}
	for _, tt := range tests {
		if got := tt.c.String(); got != tt.want {
			t.Errorf("Capability(%#x).String() = %q, want %q", uint8(tt.c), got, tt.want)
		}
	}
}

func TestParseCapabilities(t *testing.T) {
	tests := []struct {
		in      string
		want    policy.Capability
		wantErr string // a phrase the error must contain; "" for success
	}{
		{in: "read", want: policy.Read},
		{in: "read,list", want: policy.Read | policy.List},
		{in: "list,read", want: policy.Read | policy.List},
		{in: "read,read", want: policy.Read},
		{in: " write , delete ", want: policy.Write | policy.Delete},
		{in: "admin", want: policy.Admin},
		{in: "all", want: policy.All},
		{in: "*", want: policy.All},
		{in: "read,*", want: policy.All},
		{in: "", wantErr: "no capabilities"},
		{in: "  ", wantErr: "no capabilities"},
		{in: "read,", wantErr: "empty capability name"},
		{in: ",read", wantErr: "empty capability name"},
		{in: "read,,list", wantErr: "empty capability name"},
		{in: "raed", wantErr: `unknown capability "raed" (valid: read, list, write, delete, admin)`},
		{in: "READ", wantErr: `unknown capability "READ"`},
		{in: "read list", wantErr: `unknown capability "read list"`},
		{in: "none", wantErr: `unknown capability "none"`},
	}
	for _, tt := range tests {
		got, err := policy.ParseCapabilities(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseCapabilities(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
			} else if !errors.Is(err, policy.ErrInvalid) {
				t.Errorf("ParseCapabilities(%q) error %v does not match ErrInvalid", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseCapabilities(%q) = %v, %v; want %v, nil", tt.in, got, err, tt.want)
		}
	}
}

func TestCapabilityStringRoundTrip(t *testing.T) {
	for c := policy.Capability(1); c <= policy.All; c++ {
		got, err := policy.ParseCapabilities(c.String())
		if err != nil || got != c {
			t.Errorf("ParseCapabilities(%q) = %v, %v; want %v", c.String(), got, err, c)
		}
	}
}

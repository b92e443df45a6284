package policy

import (
	"strconv"
	"strings"
)

// Capability is a set of operations a rule grants, as bit flags.
type Capability uint8

// The capabilities a rule can grant. Admin implies every other capability
// on the paths its rule covers.
const (
	Read   Capability = 1 << iota // read a secret's value
	List                          // list paths and read metadata
	Write                         // store a new version
	Delete                        // hide or destroy versions
	Admin                         // manage tokens and settings; implies the rest
)

// All is every capability; ParseCapabilities returns it for "all" and "*".
const All = Read | List | Write | Delete | Admin

// capNames lists the capabilities in the order String writes them.
var capNames = [...]struct {
	c    Capability
	name string
}{
	{Read, "read"},
	{List, "list"},
	{Write, "write"},
	{Delete, "delete"},
	{Admin, "admin"},
}

// validCaps is the list of names shown when a name is not recognized.
const validCaps = "read, list, write, delete, admin"

// String returns the names of the capabilities in c, comma-separated in the
// order read, list, write, delete, admin (e.g. "read,list"), or "none" for
// the empty set. Bits that name no capability are written in hex.
func (c Capability) String() string {
	if c == 0 {
		return "none"
	}
	var b strings.Builder
	for _, n := range capNames {
		if c&n.c != 0 {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(n.name)
		}
	}
	if extra := c &^ All; extra != 0 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString("0x")
		b.WriteString(strconv.FormatUint(uint64(extra), 16))
	}
	return b.String()
}

// effective returns the capabilities c actually grants: every capability if
// c holds Admin, and never a bit that names no capability.
func (c Capability) effective() Capability {
	if c&Admin != 0 {
		return All
	}
	return c & All
}

// ParseCapabilities parses a comma-separated list of capability names such
// as "read,list". "all" and "*" stand for every capability. Space around a
// name is ignored; names are lower case. The result is never zero when the
// error is nil.
func ParseCapabilities(s string) (Capability, error) {
	if strings.TrimSpace(s) == "" {
		return 0, invalidf("no capabilities (valid: %s)", validCaps)
	}
	var caps Capability
	for name := range strings.SplitSeq(s, ",") {
		name = strings.TrimSpace(name)
		c, err := parseCapability(name)
		if err != nil {
			return 0, err
		}
		caps |= c
	}
	return caps, nil
}

// parseCapability parses one capability name.
func parseCapability(name string) (Capability, error) {
	if name == "" {
		return 0, invalidf("empty capability name in list")
	}
	if name == "all" || name == "*" {
		return All, nil
	}
	for _, n := range capNames {
		if n.name == name {
			return n.c, nil
		}
	}
	return 0, invalidf("unknown capability %q (valid: %s)", clip(name), validCaps)
}

package build

import (
	"fmt"
	"strings"
)

// valueFlags are the flags of docker build, docker buildx build, podman
// build and buildah build that take a value as the next argument (when not
// written --flag=value). Any other flag is taken as a switch. The list only
// needs to be complete enough to tell a flag's value from the build
// context.
var valueFlags = map[string]bool{
	"--add-host": true, "--allow": true, "--annotation": true, "--attest": true,
	"--build-arg": true, "--build-context": true, "--builder": true, "--cache-from": true,
	"--cache-to": true, "--call": true, "--cgroup-parent": true, "-c": true, "--cpu-shares": true,
	"--cpu-period": true, "--cpu-quota": true, "--cpuset-cpus": true, "--cpuset-mems": true,
	"-f": true, "--file": true, "--iidfile": true, "--isolation": true, "--label": true,
	"-m": true, "--memory": true, "--memory-swap": true, "--metadata-file": true,
	"--network": true, "-o": true, "--output": true, "--platform": true, "--progress": true,
	"--secret": true, "--shm-size": true, "--ssh": true, "-t": true, "--tag": true,
	"--target": true, "--ulimit": true, "--provenance": true, "--sbom": true,
	"--authfile": true, "--cert-dir": true, "--creds": true, "--format": true,
	"--jobs": true, "--os": true, "--arch": true, "--variant": true, "--userns": true,
	"--volume": true, "-v": true, "--cap-add": true, "--cap-drop": true, "--runtime": true,
	"--signature-policy": true, "--timestamp": true, "--decryption-key": true, "--env": true,
	"--from": true, "--logfile": true, "--manifest": true, "--retry": true, "--retry-delay": true,
	"--security-opt": true, "--ignorefile": true,
	"--no-cache-filter": true, "--device": true, "--dns": true, "--dns-option": true,
	"--dns-search": true, "--pid": true, "--ipc": true, "--uts": true, "--cgroupns": true,
	"--sign-by": true, "--unsetenv": true, "--unsetlabel": true, "--layer-label": true,
	"--group-add": true, "--cpp-flag": true, "--hooks-dir": true, "--userns-uid-map": true,
	"--userns-gid-map": true, "--userns-uid-map-user": true, "--userns-gid-map-group": true,
	"--variant-digest": true, "--source-date-epoch": true,
}

// buildArgs is what privy needs to know of the arguments passed through to
// the builder.
type buildArgs struct {
	rest       []string // the arguments as given, minus the tags, -f and the context
	context    string
	dockerfile string   // -f, as given ("" = CONTEXT/Dockerfile)
	tags       []string // -t, taken out: privy tags once the guard passes
	secrets    []string // ids given with --secret by the caller
	ssh        []string // ids given with --ssh by the caller
	iidfile    string
	push       bool // --push, or an --output other than the engine
	load       bool
}

// ArgsError is a problem with the arguments meant for the builder.
type ArgsError struct{ Msg string }

func (e *ArgsError) Error() string { return e.Msg }

func argsErrorf(format string, a ...any) error { return &ArgsError{fmt.Sprintf(format, a...)} }

// parseBuildArgs splits the arguments meant for the builder.
func parseBuildArgs(args []string) (*buildArgs, error) {
	b := &buildArgs{}
	var positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			positional = append(positional, a)
			continue
		}
		var name, value string
		var hasValue, attached bool
		if !strings.HasPrefix(a, "--") && len(a) > 2 && valueFlags[a[:2]] {
			// -tapp:1, -otype=registry, -t=app:1
			name, value, hasValue, attached = a[:2], strings.TrimPrefix(a[2:], "="), true, true
		} else {
			name, value, hasValue = strings.Cut(a, "=")
		}
		if !hasValue && valueFlags[name] {
			if i+1 >= len(args) {
				return nil, argsErrorf("flag %s needs a value", name)
			}
			i++
			value, hasValue = args[i], true
		}
		keep := true
		switch name {
		case "-t", "--tag":
			b.tags = append(b.tags, value)
			keep = false
		case "-f", "--file":
			b.dockerfile = value
			keep = false // argv puts it back (bust-cache may replace it)
		case "--secret":
			b.secrets = append(b.secrets, optionValue(value, "id"))
		case "--ssh":
			id, _, _ := strings.Cut(value, "=")
			b.ssh = append(b.ssh, id)
		case "--iidfile":
			b.iidfile = value
		case "--push":
			b.push = !hasValue || value != "false"
		case "--load":
			b.load = !hasValue || value != "false"
		case "-o", "--output":
			typ := optionValue(value, "type")
			if typ != "docker" && typ != "image" || strings.Contains(value, "push=true") {
				b.push = true
			}
		}
		if keep {
			b.rest = append(b.rest, a)
			if hasValue && !attached && !strings.Contains(a, "=") {
				b.rest = append(b.rest, value) // the value was the next argument
			}
		}
	}
	switch len(positional) {
	case 0:
		return nil, argsErrorf("no build context given: add the context directory (usually .) as the last argument")
	case 1:
		b.context = positional[0]
		if b.context == "" {
			return nil, argsErrorf("no build context given (it is an empty string): give a directory, usually .")
		}
	default:
		return nil, argsErrorf("more than one build context given (%s): pass exactly one, as the last argument", strings.Join(positional, ", "))
	}
	if b.context == "-" {
		return nil, argsErrorf("a build context from stdin (-) is not supported: privy must read the Dockerfile to resolve its secrets")
	}
	return b, nil
}

// optionValue returns key's value in a comma-separated key=value list such
// as "id=npm,src=/x"; a list with no key= is taken as the value of key
// when key is "type" (docker's -o DIR shorthand means type=local).
func optionValue(list, key string) string {
	for _, kv := range strings.Split(list, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	if key == "type" {
		return "local"
	}
	return ""
}

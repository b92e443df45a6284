//go:build !linux

package build

import "errors"

func privateDir() (string, error) {
	return "", errors.New("privy build needs Linux: secret files live on a tmpfs")
}

func onTmpfs(string) bool { return false }

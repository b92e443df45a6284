package internal
import (
 _ "go.etcd.io/bbolt"
 _ "github.com/spf13/cobra"
 _ "golang.org/x/crypto/argon2"
 _ "golang.org/x/sys/unix"
 _ "golang.org/x/term"
 _ "github.com/rogpeppe/go-internal/testscript"
)

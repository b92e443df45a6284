package seal

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// ErrNoTerminal means a passphrase was needed but there is no terminal to
// ask for it on.
var ErrNoTerminal = errors.New("no terminal to prompt for a passphrase; use --passphrase-file or PRIVY_MASTER_KEY")

// ttyPath is the controlling terminal. Prompting there rather than on
// stdin/stderr keeps working when those are redirected. A variable so that
// tests can stand in a file that is not a terminal.
var ttyPath = "/dev/tty"

// PromptPassphrase shows prompt on the terminal and reads a passphrase
// without echo. With confirm it asks a second time and fails unless both
// answers match. It refuses an empty passphrase, and returns an error
// wrapping ErrNoTerminal if the process has no terminal.
func PromptPassphrase(prompt string, confirm bool) ([]byte, error) {
	tty, err := os.OpenFile(ttyPath, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("reading passphrase: %w: %w", err, ErrNoTerminal)
	}
	defer tty.Close()
	fd := int(tty.Fd())
	if !term.IsTerminal(fd) {
		return nil, fmt.Errorf("reading passphrase: %s is not a terminal: %w", ttyPath, ErrNoTerminal)
	}
	return promptPassphrase(tty, func() ([]byte, error) { return term.ReadPassword(fd) }, prompt, confirm)
}

// promptPassphrase does the work of PromptPassphrase, writing prompts to w
// and reading each answer with read.
func promptPassphrase(w io.Writer, read func() ([]byte, error), prompt string, confirm bool) ([]byte, error) {
	ask := func(prompt string) ([]byte, error) {
		fmt.Fprint(w, prompt)
		p, err := read()
		fmt.Fprintln(w) // the user's Enter was not echoed
		if err != nil {
			clear(p)
			return nil, fmt.Errorf("reading passphrase: %w", err)
		}
		return p, nil
	}
	p, err := ask(prompt)
	if err != nil {
		return nil, err
	}
	if len(p) == 0 {
		return nil, errors.New("reading passphrase: passphrase is empty")
	}
	if !confirm {
		return p, nil
	}
	again, err := ask("Repeat passphrase: ")
	if err != nil {
		clear(p)
		return nil, err
	}
	defer clear(again)
	if subtle.ConstantTimeCompare(p, again) != 1 {
		clear(p)
		return nil, errors.New("reading passphrase: passphrases do not match")
	}
	return p, nil
}

// Command imagecheck looks for one secret value (from PRIVY_DEMO_VALUE) and
// its base64 and hex forms in an image's `docker history`, `docker inspect`
// and every file of its `docker save` archive, layers included. It is the
// demo's stand-in until `privy scan` exists; it exits 1 if it finds the
// value.
package main

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
)

const docker = "/usr/bin/docker"

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: PRIVY_DEMO_VALUE=… imagecheck IMAGE")
		os.Exit(2)
	}
	value := os.Getenv("PRIVY_DEMO_VALUE")
	if len(value) < 8 {
		fmt.Fprintln(os.Stderr, "imagecheck: PRIVY_DEMO_VALUE must hold the value (8 bytes or more)")
		os.Exit(2)
	}
	forms := [][]byte{
		[]byte(value),
		[]byte(base64.StdEncoding.EncodeToString([]byte(value))),
		[]byte(hex.EncodeToString([]byte(value))),
	}
	image := os.Args[1]
	found := 0
	check := func(where string, data []byte) {
		for _, f := range forms {
			if bytes.Contains(data, f) {
				fmt.Printf("FOUND in %s\n", where)
				found++
				return
			}
		}
	}
	hist, err := exec.Command(docker, "history", "--no-trunc", image).Output()
	must(err)
	check("docker history", hist)
	insp, err := exec.Command(docker, "inspect", image).Output()
	must(err)
	check("docker inspect", insp)

	cmd := exec.Command(docker, "save", image)
	out, err := cmd.StdoutPipe()
	must(err)
	must(cmd.Start())
	files := walk(out, "save", check)
	must(cmd.Wait())
	if found > 0 {
		fmt.Printf("imagecheck: the value is in the image (%d places)\n", found)
		os.Exit(1)
	}
	fmt.Printf("imagecheck: value absent from history, inspect and %d files of the saved image\n", files)
}

// walk reads a tar stream, checking each file and descending into nested
// tars (the layers of a docker save archive).
func walk(r io.Reader, where string, check func(string, []byte)) int {
	n := 0
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return n
		}
		must(err)
		if h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		must(err)
		name := where + ":" + h.Name
		n++
		check(name, data)
		// Layers are tars inside the archive (layer.tar, or blobs/sha256/…
		// in the OCI layout of newer engines): recognise them by magic.
		if len(data) >= 262 && string(data[257:262]) == "ustar" {
			n += walk(bytes.NewReader(data), name, check)
		}
	}
}

func must(err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "imagecheck: %v\n", err)
		os.Exit(2)
	}
}

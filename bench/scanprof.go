package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/privyhq/privy/internal/scan"
)

// profileScan scans the generated image once in this process, as
// `privy scan --known-file` does (same package, same options), under the
// CPU profiler: `go tool pprof -top bench FILE` then shows where the time
// of a scan goes without touching privy's own flags.
func profileScan(ctx context.Context, img *genImage, file string, stderr io.Writer) error {
	data, err := os.ReadFile(img.knownFile)
	if err != nil {
		return err
	}
	var known []scan.Known
	for i, v := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		known = append(known, scan.Known{Name: "known.txt:" + strconv.Itoa(i+1), Value: []byte(v)})
	}
	sc, err := scan.New(scan.Options{Known: known})
	if err != nil {
		return err
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	start := time.Now()
	res, err := sc.Scan(ctx, "docker-archive:"+img.archive)
	took := time.Since(start)
	pprof.StopCPUProfile()
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bench: scanned %d files, %s in %v (%.0f MB/s of layer data), %d findings; profile in %s\n",
		res.Files, size(res.Bytes), took.Round(time.Millisecond), mbps(img.layerBytes, took), len(res.Findings), file)
	return f.Close()
}

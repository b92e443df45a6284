package volume

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// state is the content of Config.StateFile: volume definitions only,
// never a value or a one-shot ticket.
type state struct {
	Volumes []volumeDef `json:"volumes"`
}

// loadState reads the definitions in path; a missing file holds none.
func loadState(path string) ([]volumeDef, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the volume definitions: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("reading the volume definitions in %s: %w", path, err)
	}
	for _, def := range st.Volumes {
		if err := checkPart("volume name", def.Name); err != nil {
			return nil, fmt.Errorf("reading the volume definitions in %s: %w", path, err)
		}
		if def.Profile == "" || def.Size <= 0 {
			return nil, fmt.Errorf("reading the volume definitions in %s: volume %q has no profile or size", path, def.Name)
		}
	}
	return st.Volumes, nil
}

// saveLocked writes the definitions to the state file, if there is one,
// through a temporary file renamed into place. The caller holds d.mu.
func (d *Driver) saveLocked() error {
	if d.stateFile == "" {
		return nil
	}
	st := state{Volumes: []volumeDef{}}
	for _, v := range d.volumes {
		st.Volumes = append(st.Volumes, v.def)
	}
	sort.Slice(st.Volumes, func(i, j int) bool { return st.Volumes[i].Name < st.Volumes[j].Name })
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(d.stateFile, append(b, '\n')); err != nil {
		return fmt.Errorf("saving the volume definitions: %w", err)
	}
	return nil
}

// writeFileAtomic replaces path with data (mode 0600).
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// removeIfEmpty removes the directory dir if it is empty.
func removeIfEmpty(dir string) error {
	err := os.Remove(dir)
	if err == nil || errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
		return nil
	}
	return err
}

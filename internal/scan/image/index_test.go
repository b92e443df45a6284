package image

import (
	"fmt"
	"testing"
)

// indexOf builds an Index from layers given as "path kind" lines, kind being
// d (directory), f (file), w (whiteout) or o (opaque directory).
func indexOf(layers ...[]string) *Index {
	x := newIndex()
	var infos []LayerInfo
	for i, l := range layers {
		key := fmt.Sprint("blob", i)
		infos = append(infos, LayerInfo{Index: i, Blob: key})
		e := x.blob(key)
		for _, s := range l {
			var p, k string
			fmt.Sscan(s, &p, &k)
			switch k {
			case "d":
				e.add(p, kindDir)
			case "f":
				e.add(p, kindFile)
			case "w":
				e.add(p, kindWhiteout)
			case "o":
				e.opaque[cleanPath(p)] = true
			}
		}
	}
	x.setLayers(infos)
	return x
}

func TestPresent(t *testing.T) {
	cases := []struct {
		name   string
		layers [][]string
		layer  int
		path   string
		want   bool
	}{
		{"only layer", [][]string{{"a/b f"}}, 0, "a/b", true},
		{"not in the layer", [][]string{{"a/b f"}}, 0, "a/c", false},
		{"layer out of range", [][]string{{"a/b f"}}, 3, "a/b", false},
		{"negative layer", [][]string{{"a/b f"}}, -1, "a/b", false},
		{"path spelled with ./", [][]string{{"a/b f"}}, 0, "./a/b", true},
		{"overwritten", [][]string{{"a/b f"}, {"a/b f"}}, 0, "a/b", false},
		{"the overwrite", [][]string{{"a/b f"}, {"a/b f"}}, 1, "a/b", true},
		{"whiteout", [][]string{{"a/b f"}, {"a/b w"}}, 0, "a/b", false},
		{"the whiteout itself", [][]string{{"a/b f"}, {"a/b w"}}, 1, "a/b", false},
		{"deleted then added", [][]string{{"a/b f"}, {"a/b w"}, {"a/b f"}}, 2, "a/b", true},
		{"deleted then added, first", [][]string{{"a/b f"}, {"a/b w"}, {"a/b f"}}, 0, "a/b", false},
		{"parent whiteout", [][]string{{"a/b/c f"}, {"a w"}}, 0, "a/b/c", false},
		{"opaque parent", [][]string{{"a/b/c f"}, {"a o", "a/x f"}}, 0, "a/b/c", false},
		{"opaque parent, file of the same layer", [][]string{{"a/b/c f"}, {"a o", "a/x f"}}, 1, "a/x", true},
		{"opaque sibling", [][]string{{"a/b f"}, {"c o"}}, 0, "a/b", true},
		{"opaque root", [][]string{{"a/b f"}, {". o"}}, 0, "a/b", false},
		{"opaque dir itself", [][]string{{"a d"}, {"a o"}}, 0, "a", true},
		{"parent replaced by a file", [][]string{{"a/b f"}, {"a f"}}, 0, "a/b", false},
		{"parent listed again as a dir", [][]string{{"a/b f"}, {"a d"}}, 0, "a/b", true},
		{"dir over dir", [][]string{{"a d"}, {"a d"}}, 0, "a", true},
		{"dir over file", [][]string{{"a f"}, {"a d"}}, 0, "a", false},
		{"other path changes", [][]string{{"a/b f"}, {"a/bb w", "b f"}}, 0, "a/b", true},
		{"later layer without the path", [][]string{{"a/b f"}, {}, {}}, 0, "a/b", true},
	}
	for _, c := range cases {
		x := indexOf(c.layers...)
		if got := x.Present(c.layer, c.path); got != c.want {
			t.Errorf("%s: Present(%d, %q) got %v, want %v", c.name, c.layer, c.path, got, c.want)
		}
	}
}

func TestWhiteoutTarget(t *testing.T) {
	cases := []struct {
		in             string
		target         string
		opaque, marker bool
	}{
		{"a/.wh.b", "a/b", false, true},
		{".wh.b", "b", false, true},
		{"a/.wh..wh..opq", "a", true, true},
		{".wh..wh..opq", "", true, true},
		{"a/.wh..wh.plnk", "", false, true},
		{"a/b.wh.c", "", false, false},
		{"a/b", "", false, false},
	}
	for _, c := range cases {
		target, opaque, ok := whiteoutTarget(c.in)
		if target != c.target || opaque != c.opaque || ok != c.marker {
			t.Errorf("whiteoutTarget(%q) got %q %v %v, want %q %v %v", c.in, target, opaque, ok, c.target, c.opaque, c.marker)
		}
	}
}

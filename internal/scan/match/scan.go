package match

import (
	"encoding/binary"
	"slices"
)

// rawHit is a verified occurrence of pattern pat ending at end (relative to
// the scanned buffer).
type rawHit struct {
	end int
	pat int32
}

// scan appends to out the occurrences of the group's patterns that lie
// entirely inside buf. With cross > 0 it keeps only those that start before
// cross and end after it (the ones that span a Write boundary).
//
// The hot loops, nextDense and nextBloom, make no calls, so that their
// state stays in registers; scan probes the positions they stop at.
func (g *group) scan(pats []pattern, buf []byte, cross int, out []rawHit) []rawHit {
	s, i := g.s, 0
	if g.dense != nil {
		for {
			if i = g.nextDense(buf, i); i+3*s+8 > len(buf) {
				break
			}
			for j := i; j <= i+3*s; j += s {
				if gr := g.load(buf, j); g.pass(gr) {
					out = g.probe(pats, buf, j, gr, cross, out)
				}
			}
			i += 4 * s
		}
	} else {
		for {
			if i = g.nextBloom(buf, i); i+8 > len(buf) {
				break
			}
			out = g.probe(pats, buf, i, g.load(buf, i), cross, out)
			i += s
		}
	}
	for ; i+g.q <= len(buf); i += s {
		if gr := g.gram(buf[i:]); g.pass(gr) {
			out = g.probe(pats, buf, i, gr, cross, out)
		}
	}
	return out
}

// nextDense returns the first i' ≥ i, in steps of 4 strides, such that one
// of the q-grams at i', i'+s, i'+2s, i'+3s passes the dense filter, or an
// i' with i'+3s+8 > len(buf). It branches once per four probes.
func (g *group) nextDense(buf []byte, i int) int {
	const shift = 64 - denseLog
	dense, mask, fold, s := g.dense, g.qmask, g.fold, g.s
	if s == 1 { // the usual case of keywords: constant offsets
		for ; i+11 <= len(buf); i += 4 {
			b := buf[i : i+11 : i+11]
			h0 := (binary.LittleEndian.Uint64(b[0:])&mask | fold) * hashMul1 >> shift
			h1 := (binary.LittleEndian.Uint64(b[1:])&mask | fold) * hashMul1 >> shift
			h2 := (binary.LittleEndian.Uint64(b[2:])&mask | fold) * hashMul1 >> shift
			h3 := (binary.LittleEndian.Uint64(b[3:])&mask | fold) * hashMul1 >> shift
			if dense[h0]|dense[h1]|dense[h2]|dense[h3] != 0 {
				return i
			}
		}
		return i
	}
	for ; i+3*s+8 <= len(buf); i += 4 * s {
		h0 := (binary.LittleEndian.Uint64(buf[i:])&mask | fold) * hashMul1 >> shift
		h1 := (binary.LittleEndian.Uint64(buf[i+s:])&mask | fold) * hashMul1 >> shift
		h2 := (binary.LittleEndian.Uint64(buf[i+2*s:])&mask | fold) * hashMul1 >> shift
		h3 := (binary.LittleEndian.Uint64(buf[i+3*s:])&mask | fold) * hashMul1 >> shift
		if dense[h0]|dense[h1]|dense[h2]|dense[h3] != 0 {
			return i
		}
	}
	return i
}

// nextBloom returns the first i' ≥ i, in steps of the stride, whose q-gram
// passes the Bloom filter, or an i' with i'+8 > len(buf).
func (g *group) nextBloom(buf []byte, i int) int {
	bloom, wshift, mask, fold, s := g.bloom, (64-g.bwlog)&63, g.qmask, g.fold, g.s
	for ; i+8 <= len(buf); i += s {
		gr := binary.LittleEndian.Uint64(buf[i:])&mask | fold
		h := gr * hashMul2
		bits := uint64(1)<<(h>>58) | uint64(1)<<(h>>52&63)
		if bloom[gr*hashMul1>>wshift]&bits == bits {
			return i
		}
	}
	return i
}

// probe looks up q-gram gr, found at buf[i:], and verifies its candidates.
func (g *group) probe(pats []pattern, buf []byte, i int, gr uint64, cross int, out []rawHit) []rawHit {
	tmask := uint64(len(g.slots) - 1)
	for t := gr * hashMul3 >> g.tshift; ; t = (t + 1) & tmask {
		sl := &g.slots[t]
		if sl.n == 0 {
			return out
		}
		if sl.gram != gr {
			continue
		}
		if sl.n&crowded == 0 {
			return g.verify(pats, buf, i, g.ents[sl.start:sl.start+sl.n], cross, out)
		}
		for _, r := range g.runs[sl.start : sl.start+sl.n&^crowded] {
			t := i - int(r.off)
			if t < 0 || t+g.keyLen > len(buf) {
				continue
			}
			k := prefixKey(buf[t : t+g.keyLen])
			keys := g.keys[r.from:r.to]
			lo, _ := slices.BinarySearch(keys, k)
			hi := lo
			for hi < len(keys) && keys[hi] == k {
				hi++
			}
			out = g.verify(pats, buf, i, g.ents[int(r.from)+lo:int(r.from)+hi], cross, out)
		}
		return out
	}
}

// verify appends the entries whose literals occur at their offsets before
// buf[i].
func (g *group) verify(pats []pattern, buf []byte, i int, ents []entry, cross int, out []rawHit) []rawHit {
	for _, e := range ents {
		start := i - int(e.off)
		p := &pats[e.pat]
		end := start + len(p.b)
		if start < 0 || end > len(buf) {
			continue
		}
		if cross > 0 && (start >= cross || end <= cross) {
			continue
		}
		text := buf[start:end]
		if p.fold && equalFold(text, p.b) || !p.fold && string(text) == string(p.b) {
			out = append(out, rawHit{end: end, pat: e.pat})
		}
	}
	return out
}

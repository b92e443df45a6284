package match

import (
	"cmp"
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
)

const (
	maxStride = 32 // caps the (literal, offset) pairs each literal registers
	// groupCost is the fixed cost of one more group, in probes per byte:
	// a pass over each buffer and a filter in cache.
	groupCost = 0.02
	// bloomBitsPerGram sizes the two-bit Bloom filter of large groups for
	// a false-positive rate of about 1/400 per probe.
	bloomBitsPerGram = 32
	minBloomLog      = 12 // 512 bytes
	maxBloomLog      = 24 // 2 MiB
	// denseLog sizes the filter of small groups: a byte per hash value,
	// read with a constant shift, is the fastest test Go compiles, and
	// 32 KiB stays in L1.
	denseLog = 15
	maxDense = 1 << (denseLog - 5) // q-grams, for a false-positive rate of 1/32

	hashMul1 = 0x9e3779b97f4a7c15
	hashMul2 = 0xc2b2ae3d27d4eb4f
	hashMul3 = 0x165667b19e3779f9
)

// group is the literals of one length range, found with one sampled q-gram
// filter.
type group struct {
	q, s   int    // q-gram length and stride
	qmask  uint64 // keeps the q low bytes of a little-endian load
	fold   uint64 // ORed into a masked q-gram when the group folds case
	maxLen int    // longest literal of the group

	dense *[1 << denseLog]uint8 // the filter of small groups, or nil
	bloom []uint64              // the filter of the others: two bits per q-gram
	bwlog uint                  // log2(len(bloom))

	slots  []slot // open addressing on hash3(q-gram) >> tshift
	tshift uint
	ents   []entry

	// A crowded slot (more than crowdLimit entries, as when many literals
	// share a repetitive head) lists runs of entries with equal offsets,
	// sorted within each run by keys, a hash of the literals' first keyLen
	// bytes: a probe then hashes the text once per run and looks the hash
	// up, instead of trying every entry.
	runs   []offRun
	keys   []uint64 // parallel to ents
	keyLen int
}

// offRun is ents[from:to], all with offset off.
type offRun struct {
	off      int32
	from, to uint32
}

const (
	crowdLimit = 16
	crowded    = 1 << 31 // flag in slot.n: start and n index runs
)

// slot lists the entries of one q-gram: ents[start : start+n].
type slot struct {
	gram     uint64
	start, n uint32
}

// entry says: pattern pat may start off bytes before a position holding
// this q-gram.
type entry struct {
	pat, off int32
}

// gramLens lists the q-gram lengths a group may use: 8-byte words are the
// most selective, shorter ones leave a longer stride to short literals.
var gramLens = []int{1, 2, 3, 4, 8}

func stride(m, q int) int { return min(m-q+1, maxStride) }

// groupCostFor estimates the cost per byte of a group of n patterns whose
// shortest has length m, with q-grams of length q, in units of one probe of
// a filter in L1: probes per byte times the cost of a probe, which grows as
// the filter leaves L1 and then L2, plus the candidates a probe turns up.
// Text is assumed to hold a given q-gram at a given position with
// probability 20^-q (short q-grams of real text are about that common).
func groupCostFor(m, q, n int) float64 {
	const verify = 5 // a table look-up and a comparison
	s := stride(m, q)
	grams := n * s
	var probe float64
	switch bits := grams * bloomBitsPerGram; {
	case grams <= maxDense:
		probe = 0.5 + verify/32.0
	case bits <= 1<<18:
		probe = 1
	case bits <= 1<<23:
		probe = 2
	default:
		probe = 4
	}
	probe += float64(grams) * math.Pow(20, -float64(q)) * verify
	return groupCost + probe/float64(s)
}

// buildGroups splits the patterns by length into contiguous ranges, and
// picks each range's q-gram length, so as to minimise the estimated cost
// per byte; then it builds one group per range.
func buildGroups(pats []pattern) []*group {
	if len(pats) == 0 {
		return nil
	}
	var lens []int
	for _, p := range pats {
		lens = append(lens, len(p.b))
	}
	slices.Sort(lens)
	lens = slices.Compact(lens)
	nAt := make([]int, len(lens)) // patterns of length lens[i]
	for _, p := range pats {
		i, _ := slices.BinarySearch(lens, len(p.b))
		nAt[i]++
	}

	// best[j] is the cost of grouping lens[:j]; its last group starts at
	// from[j] and uses q-grams of length qOf[j].
	k := len(lens)
	best := make([]float64, k+1)
	from := make([]int, k+1)
	qOf := make([]int, k+1)
	for j := 1; j <= k; j++ {
		best[j] = math.Inf(1)
		n := 0
		for i := j - 1; i >= 0; i-- {
			n += nAt[i]
			for _, q := range gramLens {
				if q > lens[i] {
					break
				}
				if c := best[i] + groupCostFor(lens[i], q, n); c < best[j] {
					best[j], from[j], qOf[j] = c, i, q
				}
			}
		}
	}
	type plan struct{ minLen, q int }
	var plans []plan // ascending minLen
	for j := k; j > 0; j = from[j] {
		plans = append(plans, plan{lens[from[j]], qOf[j]})
	}
	slices.Reverse(plans)

	members := make([][]int32, len(plans))
	for i, p := range pats {
		gi, found := slices.BinarySearchFunc(plans, len(p.b), func(pl plan, l int) int { return cmp.Compare(pl.minLen, l) })
		if !found {
			gi--
		}
		members[gi] = append(members[gi], int32(i))
	}
	groups := make([]*group, len(plans))
	for gi, pl := range plans {
		groups[gi] = newGroup(pats, members[gi], pl.minLen, pl.q)
	}
	return groups
}

func newGroup(pats []pattern, members []int32, minLen, q int) *group {
	g := &group{q: q, s: stride(minLen, q), qmask: ^uint64(0) >> (64 - 8*q)}
	for _, pi := range members {
		g.maxLen = max(g.maxLen, len(pats[pi].b))
		if pats[pi].fold {
			g.fold = 0x2020202020202020 & g.qmask
		}
	}

	// Give the least flexible literals their windows first, so the longer
	// ones can steer clear of crowded q-grams.
	slices.SortStableFunc(members, func(a, b int32) int {
		return cmp.Compare(len(pats[a].b), len(pats[b].b))
	})
	type gramEntry struct {
		gram uint64
		e    entry
	}
	var all []gramEntry
	count := make(map[uint64]int)
	var grams []uint64
	var cost []float64
	for _, pi := range members {
		p := pats[pi]
		grams, cost = grams[:0], cost[:0]
		for j := 0; j+q <= len(p.b); j++ {
			gr := g.gram(p.b[j:])
			grams = append(grams, gr)
			cost = append(cost, float64(count[gr])+gramCost(p.b[j:j+q], g.fold != 0))
		}
		// Slide a window of s offsets over the q-grams; keep the cheapest.
		w, sum := 0, 0.0
		for j := 0; j < g.s; j++ {
			sum += cost[j]
		}
		bestSum := sum
		for j := 1; j+g.s <= len(grams); j++ {
			sum += cost[j+g.s-1] - cost[j-1]
			if sum < bestSum {
				w, bestSum = j, sum
			}
		}
		for j := w; j < w+g.s; j++ {
			count[grams[j]]++
			all = append(all, gramEntry{grams[j], entry{pat: pi, off: int32(j)}})
		}
	}
	slices.SortFunc(all, func(a, b gramEntry) int { return cmp.Compare(a.gram, b.gram) })
	distinct := len(count)

	if distinct <= maxDense {
		g.dense = new([1 << denseLog]uint8)
	} else {
		flog := bits.Len(uint(distinct*bloomBitsPerGram - 1))
		flog = min(max(flog, minBloomLog), maxBloomLog)
		g.bwlog = uint(flog - 6)
		g.bloom = make([]uint64, 1<<g.bwlog)
	}
	tlog := bits.Len(uint(2*distinct - 1))
	g.slots = make([]slot, 1<<tlog)
	g.tshift = uint(64 - tlog)
	tmask := uint64(len(g.slots) - 1)

	g.ents = make([]entry, len(all))
	g.keyLen = min(minLen, 32)
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].gram == all[i].gram {
			g.ents[j] = all[j].e
			j++
		}
		start, n := uint32(i), uint32(j-i)
		if j-i > crowdLimit {
			start, n = g.crowd(pats, i, j)
		}
		gr := all[i].gram
		if g.dense != nil {
			g.dense[gr*hashMul1>>(64-denseLog)] = 1
		} else {
			word, bits := g.bloomBits(gr)
			g.bloom[word] |= bits
		}
		t := gr * hashMul3 >> g.tshift
		for g.slots[t].n != 0 {
			t = (t + 1) & tmask
		}
		g.slots[t] = slot{gram: gr, start: start, n: n}
		i = j
	}
	return g
}

// crowd sorts ents[i:j] by offset and key and returns the slot's start and
// n for the runs of equal offsets it appends.
func (g *group) crowd(pats []pattern, i, j int) (start, n uint32) {
	if g.keys == nil {
		g.keys = make([]uint64, len(g.ents))
	}
	for x := i; x < j; x++ {
		g.keys[x] = prefixKey(pats[g.ents[x].pat].b[:g.keyLen])
	}
	idx := make([]int, j-i)
	for x := range idx {
		idx[x] = i + x
	}
	slices.SortFunc(idx, func(a, b int) int {
		return cmp.Or(cmp.Compare(g.ents[a].off, g.ents[b].off), cmp.Compare(g.keys[a], g.keys[b]))
	})
	ents, keys := make([]entry, len(idx)), make([]uint64, len(idx))
	for x, y := range idx {
		ents[x], keys[x] = g.ents[y], g.keys[y]
	}
	copy(g.ents[i:j], ents)
	copy(g.keys[i:j], keys)

	start = uint32(len(g.runs))
	for a := i; a < j; {
		b := a
		for b < j && g.ents[b].off == g.ents[a].off {
			b++
		}
		g.runs = append(g.runs, offRun{off: g.ents[a].off, from: uint32(a), to: uint32(b)})
		a = b
	}
	return start, uint32(len(g.runs)-int(start)) | crowded
}

// prefixKey hashes b after ASCII lower-casing, so that it serves folded and
// exact literals alike.
func prefixKey(b []byte) uint64 {
	h := uint64(len(b))
	for _, c := range b {
		h = (h ^ uint64(lower[c])) * hashMul2
	}
	return h
}

// gramCost estimates how often text holds q-gram b at a given position,
// scaled so that common ones outweigh crowding, and penalises runs of one
// byte (padding, zeros, "-----", spaces), which text is full of.
func gramCost(b []byte, fold bool) float64 {
	f := 1.0
	run := true
	for i, c := range b {
		p := byteFreq[c]
		if fold && lower[c] != upper[c] {
			p = byteFreq[lower[c]] + byteFreq[upper[c]]
		}
		f *= p
		run = run && (i == 0 || c == b[i-1])
	}
	if run && len(b) > 1 {
		return 1e6
	}
	return f * 1e6
}

// byteFreq is a rough frequency of each byte in layers: English and source
// text, and binaries.
var byteFreq = func() (t [256]float64) {
	for i := range t {
		t[i] = 0.001
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = 0.003
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = 0.005
	}
	for _, c := range "(){}[].,;:=\"'*/-_<>!&|+#$%" {
		t[c] = 0.008
	}
	for i, c := range "etaoinsrhldcumfpgwybvkxjqz" {
		t[c] = 0.06 - 0.0022*float64(i)
	}
	t[' '], t['\n'], t['\t'], t[0], t[0xff] = 0.12, 0.04, 0.04, 0.05, 0.01
	return t
}()

var upper = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
		if 'a' <= i && i <= 'z' {
			t[i] -= 'a' - 'A'
		}
	}
	return t
}()

// gram returns the group's q-gram at the start of b (len(b) ≥ q).
func (g *group) gram(b []byte) uint64 {
	var w uint64
	if len(b) >= 8 {
		w = binary.LittleEndian.Uint64(b)
	} else {
		for i := len(b) - 1; i >= 0; i-- {
			w = w<<8 | uint64(b[i])
		}
	}
	return w&g.qmask | g.fold
}

func (g *group) load(buf []byte, i int) uint64 {
	return binary.LittleEndian.Uint64(buf[i:])&g.qmask | g.fold
}

// bloomBits returns the word of the Bloom filter for q-gram gr and the two
// bits it sets in it.
func (g *group) bloomBits(gr uint64) (int, uint64) {
	h := gr * hashMul2
	return int(gr * hashMul1 >> (64 - g.bwlog&63)), 1<<(h>>58) | 1<<(h>>52&63)
}

// pass reports whether q-gram gr passes the group's filter.
func (g *group) pass(gr uint64) bool {
	if g.dense != nil {
		return g.dense[gr*hashMul1>>(64-denseLog)] != 0
	}
	word, bits := g.bloomBits(gr)
	return g.bloom[word]&bits == bits
}

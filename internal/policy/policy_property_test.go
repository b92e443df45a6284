package policy_test

import (
	"flag"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/privyhq/privy/internal/policy"
)

var seedFlag = flag.Uint64("policy.seed", 0, "seed for the random policy tests (0: derive one from the clock)")

// newRand returns a seeded generator and logs the seed if the test fails.
func newRand(t *testing.T) *rand.Rand {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("random seed: %d (rerun with -policy.seed=%d)", seed, seed)
		}
	})
	return rand.New(rand.NewPCG(seed, seed))
}

// refMatch is a deliberately simple matcher for globs that passed
// validation: split both sides on '/', let "**" try every number of
// segments (memoized so that fuzzed globs stay cheap), and match other
// segments with a regular expression, after refusing pseudo segments.
func refMatch(glob, path string) bool {
	gs := strings.Split(glob, "/")
	var ps []string // the empty path has no segments
	if path != "" {
		ps = strings.Split(path, "/")
	}
	memo := map[[2]int]bool{}
	var rec func(i, j int) bool
	rec = func(i, j int) bool {
		key := [2]int{i, j}
		if v, ok := memo[key]; ok {
			return v
		}
		var ok bool
		switch {
		case i == len(gs):
			ok = j == len(ps)
		case gs[i] == "**":
			for k := j; k <= len(ps) && !ok; k++ {
				ok = rec(i+1, k)
			}
		case j == len(ps):
			ok = false
		case strings.HasPrefix(ps[j], ":"):
			ok = false
		default:
			ok = refSegment(gs[i]).MatchString(ps[j]) && rec(i+1, j+1)
		}
		memo[key] = ok
		return ok
	}
	return rec(0, 0)
}

var refSegments = map[string]*regexp.Regexp{}

// refSegment translates one glob segment into an anchored regexp.
func refSegment(seg string) *regexp.Regexp {
	if re, ok := refSegments[seg]; ok {
		return re
	}
	var b strings.Builder
	b.WriteString(`(?s)^`)
	for _, r := range seg {
		switch r {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString(`$`)
	re := regexp.MustCompile(b.String())
	if len(refSegments) < 10000 {
		refSegments[seg] = re
	}
	return re
}

// refAllows checks each capability in c on its own: some rule that matches
// path must grant it, or grant admin.
func refAllows(p policy.Policy, c policy.Capability, path string) bool {
	if c == 0 {
		return false
	}
	for bit := policy.Capability(1); bit != 0; bit <<= 1 {
		if c&bit == 0 {
			continue
		}
		if bit&policy.All == 0 {
			return false
		}
		granted := false
		for _, r := range p {
			if refMatch(r.Glob, path) && (r.Caps&bit != 0 || r.Caps&policy.Admin != 0) {
				granted = true
			}
		}
		if !granted {
			return false
		}
	}
	return true
}

// A small alphabet, so that random globs and paths match often.
var (
	globSegs = []string{"a", "b", "ab", "*", "?", "a*", "*b", "?b", "a?", "*?*", "**", "**", "**"}
	pathSegs = []string{"a", "b", "ab", "ba", "aab", "", ":a", "é"}
	caps     = []policy.Capability{policy.Read, policy.List, policy.Write, policy.Delete, policy.Admin}
)

func randGlob(r *rand.Rand) string {
	n := 1 + r.IntN(4)
	segs := make([]string, n)
	for i := range segs {
		segs[i] = globSegs[r.IntN(len(globSegs))]
	}
	return strings.Join(segs, "/")
}

func randPath(r *rand.Rand) string {
	n := r.IntN(4)
	segs := make([]string, n)
	for i := range segs {
		// Mostly ordinary segments; now and then an empty or odd one.
		if r.IntN(8) == 0 {
			segs[i] = pathSegs[r.IntN(len(pathSegs))]
		} else {
			segs[i] = pathSegs[r.IntN(5)]
		}
	}
	return strings.Join(segs, "/")
}

// randCaps returns a non-empty capability set: each of read, list, write
// and delete with even odds, admin now and then.
func randCaps(r *rand.Rand) policy.Capability {
	for {
		c := policy.Capability(r.IntN(16))
		if r.IntN(10) == 0 {
			c |= policy.Admin
		}
		if c != 0 {
			return c
		}
	}
}

func randPolicy(r *rand.Rand) policy.Policy {
	p := make(policy.Policy, 1+r.IntN(4))
	for i := range p {
		p[i] = policy.Rule{Caps: randCaps(r), Glob: randGlob(r)}
		if _, err := policy.ParseRule(p[i].String()); err != nil {
			panic("randPolicy made an invalid rule: " + err.Error())
		}
	}
	return p
}

func TestMatchAgainstReference(t *testing.T) {
	r := newRand(t)
	matched := 0
	const trials = 20000
	for range trials {
		glob, path := randGlob(r), randPath(r)
		want := refMatch(glob, path)
		if got := policy.Match(glob, path); got != want {
			t.Fatalf("Match(%q, %q) = %v, reference says %v", glob, path, got, want)
		}
		if want {
			matched++
		}
	}
	t.Logf("%d of %d random globs matched", matched, trials)
	if matched < trials/10 || matched > trials*9/10 {
		t.Errorf("%d of %d random globs matched; want both outcomes to be common", matched, trials)
	}
}

func TestAllowsAgainstReference(t *testing.T) {
	r := newRand(t)
	allowed := 0
	const trials = 20000
	for range trials {
		p, path := randPolicy(r), randPath(r)
		c := caps[r.IntN(len(caps)-1)]
		if r.IntN(10) == 0 {
			c = policy.Admin
		} else if r.IntN(3) == 0 {
			c = randCaps(r)
		}
		want := refAllows(p, c, path)
		if got := p.Allows(c, path); got != want {
			t.Fatalf("%q.Allows(%v, %q) = %v, reference says %v", p.Strings(), c, path, got, want)
		}
		if got := p.Missing(c, path) == nil; got != want {
			t.Fatalf("%q.Missing(%v, %q) == nil is %v, reference says %v", p.Strings(), c, path, got, want)
		}
		if want {
			allowed++
		}
	}
	t.Logf("%d of %d random requests allowed", allowed, trials)
	if allowed < trials/10 || allowed > trials*9/10 {
		t.Errorf("%d of %d random requests allowed; want both outcomes to be common", allowed, trials)
	}
}

// deriveRule returns a rule likely to be within rule, so that random Covers
// checks come out true often enough to test something.
func deriveRule(r *rand.Rand, rule policy.Rule) policy.Rule {
	c := rule.Caps & randCaps(r)
	if c == 0 || r.IntN(5) == 0 {
		c = randCaps(r)
	}
	g := rule.Glob
	switch r.IntN(4) {
	case 0: // keep the glob
	case 1: // narrow a trailing "**"
		if prefix, ok := strings.CutSuffix(g, "/**"); ok {
			g = prefix
			if r.IntN(2) == 0 {
				g += "/" + randGlob(r)
			}
		} else if g == "**" {
			g = randGlob(r)
		}
	case 2:
		g = randGlob(r)
	case 3:
		g = g + "/" + randGlob(r)
	}
	if len(g) > policy.MaxGlobLen {
		g = rule.Glob
	}
	return policy.Rule{Caps: c, Glob: g}
}

// TestCoversIsSound checks that whenever p.Covers(q), q allows nothing on
// a random path that p does not.
func TestCoversIsSound(t *testing.T) {
	r := newRand(t)
	covered, checked := 0, 0
	const trials = 10000
	for range trials {
		p := randPolicy(r)
		if r.IntN(4) == 0 {
			p = append(p, policy.Rule{Caps: randCaps(r), Glob: "**"})
		}
		q := make(policy.Policy, 1+r.IntN(2))
		for i := range q {
			q[i] = deriveRule(r, p[r.IntN(len(p))])
		}
		if !p.Covers(q) {
			continue
		}
		covered++
		for range 50 {
			path := randPath(r)
			c := caps[r.IntN(len(caps))]
			if q.Allows(c, path) {
				checked++
				if !p.Allows(c, path) {
					t.Fatalf("%q.Covers(%q) is true, but the latter allows %v on %q and the former does not",
						p.Strings(), q.Strings(), c, path)
				}
			}
		}
	}
	t.Logf("%d of %d random pairs covered; %d allowed requests checked", covered, trials, checked)
	if covered < trials/10 || checked < trials/2 {
		t.Errorf("only %d of %d pairs covered and %d requests checked; the test checks too little", covered, trials, checked)
	}
}

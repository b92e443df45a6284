// Package scan finds secrets in container images: every value privy holds
// (and its common encodings) plus detector rules, over the image config,
// its history and every file of every layer — files deleted by later
// layers included — and reports each finding with its layer, path and
// whether the file is still in the final image, never with the value.
//
// The parts live in sub-packages: image streams an image's layers once,
// match is the one multi-pattern matcher over all literal keys, and detect
// holds the detector rules. This package ties them together and writes the
// reports (text, JSON, SARIF 2.1.0).
package scan

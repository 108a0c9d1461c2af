"""What the tests and the benchmarks share, and nothing ships: documents made on the fly with their ground
truth (pymupdf, AGPL, is used here only), crops of a typical page, servers in a thread, and the local stack's
three tiers on free ports."""

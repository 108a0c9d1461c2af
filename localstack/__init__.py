"""The local CPU stack behind `make up`: the three tiers as supervised processes on loopback."""

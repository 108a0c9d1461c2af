"""Benchmarks: scripts that start the stack on free loopback ports, drive it and print figures.

`python -m bench` runs gateway_overhead, orchestration, head_of_line and cpu_profile; each also runs alone
(`python -m bench.<name> --help`). `bench.load` is the load generator, and `bench.cpu_recogniser` measures the
offline recogniser by itself. Results and command lines: BENCHMARKS.md.
"""

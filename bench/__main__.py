"""`python -m bench` (`make bench`): the four benchmarks one after another, each on a stack of its own.

About seven minutes on two cores. Each prints its own figures; the exit status is 1 if any of them failed to
run (a target missed is printed, not an error).
"""

from __future__ import annotations

import sys
import time

from bench import cpu_profile, gateway_overhead, head_of_line, orchestration
from bench.measure import Others

BENCHMARKS = {
    "gateway overhead": gateway_overhead.main,
    "orchestration efficiency": orchestration.main,
    "head-of-line blocking": head_of_line.main,
    "CPU profile": cpu_profile.main,
}


def main() -> int:
    status = 0
    for name, run in BENCHMARKS.items():
        print(f"\n=== {name} ===", flush=True)
        started, others = time.monotonic(), Others()
        try:
            code = run([])
            print(others.line())
        except KeyboardInterrupt:
            print("interrupted")
            return 130
        except SystemExit as exc:  # the stack did not start: the message says why
            print(exc)
            code = 1
        except Exception as exc:  # one broken benchmark should not hide the others' figures
            print(f"{name} failed: {type(exc).__name__}: {exc}")
            code = 1
        print(f"({name}: {time.monotonic() - started:.0f} s)", flush=True)
        status = status or code
    return status


if __name__ == "__main__":
    sys.exit(main())

"""`python -m localstack` (what `make up` runs): the three tiers (`localstack.tiers`) as local processes.

Each starts once the one before it is ready; the stack is up when the gateway's /health/ready answers 200.
Ctrl-C or SIGTERM stops all of them, the gateway first (it lets requests in flight finish), within the
gateway's drain time and ten seconds more each.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping

from localstack.supervisor import Supervisor
from localstack.tiers import HOST, build_tiers, ports


def busy_ports(wanted: Mapping[str, int]) -> list[str]:
    """Ports something else already listens on: a clear message now beats a tier dying in a loop later."""
    busy = []
    for key, port in wanted.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((HOST, port))
            except OSError:
                busy.append(f"port {port} is in use: stop what listens there or set {key} to another port")
    return busy


def stop_grace(environ: Mapping[str, str]) -> float:
    """Seconds a tier may take to stop: the gateway's drain (HPS_DRAIN_TIMEOUT, 30 s) and 10 more."""
    try:
        return float(environ.get("HPS_DRAIN_TIMEOUT") or 30) + 10
    except ValueError:
        return 40.0


def main() -> int:
    problems = busy_ports(ports(os.environ))
    if problems:
        for line in problems:
            print(f"localstack: {line}", file=sys.stderr)
        return 1
    gateway = f"http://{HOST}:{ports(os.environ)['HPS_GATEWAY_PORT']}"

    supervisor = Supervisor(build_tiers(os.environ), grace=stop_grace(os.environ))

    def announce() -> None:
        supervisor.say(f"ready: API {gateway}  page {gateway}/  docs {gateway}/docs  "
                       f"metrics {gateway}/metrics")
        supervisor.say("Ctrl-C stops the stack")

    return supervisor.run(on_ready=announce)


if __name__ == "__main__":
    sys.exit(main())

"""Run a few servers as one local stack: start them in order, wait for each, restart any that dies, stop all.

It does for local processes what compose does for the containers (`depends_on: service_healthy`,
`restart: unless-stopped`), and knows nothing about what the processes are: a list of `Tier`s, so that tests
can drive it with tiny fake servers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import TextIO

NAME = "localstack"


@dataclass
class Tier:
    """One server: how to start it, and the URL that answers 200 once it is ready (None: once started)."""

    name: str
    argv: list[str]
    env: Mapping[str, str]  # the child's whole environment (some tiers need a clean one)
    ready_url: str | None = None
    cwd: str | None = None


class StartupError(RuntimeError):
    """A tier died or did not become ready while the stack was starting."""


@dataclass
class _State:
    tier: Tier
    proc: subprocess.Popen[bytes] | None = None
    ready: bool = False
    started_at: float = 0.0
    restart_at: float | None = None
    backoff: float = 0.0
    restarts: int = 0
    readers: list[threading.Thread] = field(default_factory=list)


# Loopback only, never through a proxy configured in the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def is_ready(url: str, timeout: float = 1.0) -> bool:
    try:
        with _OPENER.open(url, timeout=timeout) as resp:
            return bool(resp.status == 200)
    except Exception:  # refused, reset, timeout, 5xx: all mean "not yet"
        return False


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


def _signal_group(pgid: int, sig: int) -> bool:
    """Signal a whole process group; False when nobody is left in it."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:  # a zombie leader on some kernels: its group is as good as gone
        return False


class Supervisor:
    def __init__(
        self,
        tiers: Sequence[Tier],
        *,
        out: TextIO | None = None,
        ready_timeout: float = 300.0,
        grace: float = 10.0,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        stable_after: float = 60.0,
        poll: float = 0.2,
    ) -> None:
        self._states = [_State(t, backoff=backoff) for t in tiers]
        self._out = out or sys.stdout
        self._width = max([len(NAME)] + [len(t.name) for t in tiers])
        self._lock = threading.RLock()  # re-entrant: the signal handler may speak mid-line
        self._ready_timeout = ready_timeout
        self._grace = grace
        self._backoff, self._max_backoff, self._stable_after = backoff, max_backoff, stable_after
        self._poll = poll
        self._stop = threading.Event()
        self._hurry = False  # a second Ctrl-C: kill at once

    # -- output ---------------------------------------------------------------------------------------

    def say(self, message: str, name: str = NAME) -> None:
        with self._lock:
            self._out.write(f"{name:<{self._width}} | {message}\n")
            self._out.flush()

    def _pump(self, name: str, stream: object) -> None:
        for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
            self.say(raw.decode("utf-8", "replace").rstrip("\r\n"), name)

    # -- processes ------------------------------------------------------------------------------------

    def _spawn(self, state: _State) -> None:
        tier = state.tier
        proc = subprocess.Popen(
            tier.argv, env=dict(tier.env), cwd=tier.cwd, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: Ctrl-C reaches us only, and we stop it whole
        )
        reader = threading.Thread(target=self._pump, args=(tier.name, proc.stdout), daemon=True)
        reader.start()
        state.proc, state.ready, state.started_at, state.restart_at = proc, False, time.monotonic(), None
        state.readers = [reader]

    def stop(self) -> None:
        """Stop the tiers in the reverse of their start order, as compose does: each drains what it is
        doing while the tiers behind it still serve it. A tier's leader gets SIGTERM (its helpers, such as
        Triton's model stubs, are the leader's to stop); what is still in its group after the leader exits,
        or after the grace period, gets SIGKILL."""
        for state in reversed(self._states):
            if state.proc is not None:
                self._stop_one(state)

    def _stop_one(self, state: _State) -> None:
        proc = state.proc
        assert proc is not None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self._grace
        while proc.poll() is None and time.monotonic() < deadline and not self._hurry:
            time.sleep(0.05)
        if proc.poll() is None:
            self.say(f"{state.tier.name} did not stop within {self._grace:.0f}s: killing it")
        _signal_group(proc.pid, signal.SIGKILL)   # the leader if it is still there, and what it left behind
        proc.wait()
        for reader in state.readers:
            reader.join(timeout=2)
        state.proc = None

    # -- the phases -----------------------------------------------------------------------------------

    def start(self) -> bool:
        """Start the tiers in order, each once the previous is ready. False if a stop was requested."""
        for state in self._states:
            tier = state.tier
            self.say(f"starting {tier.name}: {' '.join(tier.argv)}")
            self._spawn(state)
            deadline = time.monotonic() + self._ready_timeout
            while not state.ready:
                assert state.proc is not None
                if self._stop.is_set():
                    return False
                code = state.proc.poll()
                if code is not None:
                    raise StartupError(f"{tier.name} exited with {describe_exit(code)} before it was ready"
                                       " (its last lines are above)")
                if tier.ready_url is None or is_ready(tier.ready_url):
                    state.ready = True
                    break
                if time.monotonic() > deadline:
                    raise StartupError(f"{tier.name} was not ready within {self._ready_timeout:.0f}s "
                                       f"({tier.ready_url} did not answer 200)")
                self._stop.wait(self._poll)
            self.say(f"{tier.name} is ready" + (f" ({tier.ready_url})" if tier.ready_url else ""))
        return True

    def _tick(self) -> None:
        now = time.monotonic()
        for state in self._states:
            tier, proc = state.tier, state.proc
            if proc is not None and proc.poll() is not None:
                _signal_group(proc.pid, signal.SIGKILL)  # whatever it left behind in its group
                delay = state.backoff
                state.backoff = min(state.backoff * 2, self._max_backoff)
                self.say(f"{tier.name} exited with {describe_exit(proc.returncode)}; "
                         f"restarting in {delay:g}s")
                state.proc, state.ready, state.restart_at = None, False, now + delay
            elif proc is None and state.restart_at is not None and now >= state.restart_at:
                state.restarts += 1
                self.say(f"restarting {tier.name} (restart #{state.restarts})")
                self._spawn(state)
            elif proc is not None and not state.ready:
                if tier.ready_url is None or is_ready(tier.ready_url):
                    state.ready = True
                    self.say(f"{tier.name} is ready again")
            elif state.ready and now - state.started_at > self._stable_after:
                state.backoff = self._backoff  # it has been fine for a while: the next crash is news

    def watch(self) -> None:
        """Until a stop is requested: restart any tier that dies, with a growing delay."""
        while not self._stop.is_set():
            self._tick()
            self._stop.wait(self._poll)

    def request_stop(self) -> None:
        if self._stop.is_set():
            self._hurry = True
        self._stop.set()

    def restarts(self, name: str) -> int:
        return next(s.restarts for s in self._states if s.tier.name == name)

    def pid(self, name: str) -> int | None:
        state = next(s for s in self._states if s.tier.name == name)
        return state.proc.pid if state.proc is not None else None

    def run(self, on_ready: Callable[[], None] | None = None) -> int:
        """Start, call `on_ready`, watch until SIGINT/SIGTERM, stop everything. 0: stopped on request."""
        def handle(signum: int, frame: FrameType | None) -> None:
            if not self._stop.is_set():
                self.say(f"{signal.Signals(signum).name}: stopping (again to kill at once)")
            self.request_stop()

        previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            if not self.start():
                return 0
            if on_ready is not None:
                on_ready()
            self.watch()
            return 0
        except StartupError as exc:
            self.say(f"error: {exc}")
            return 1
        finally:
            self.stop()
            self.say("stopped")
            for sig, handler in previous.items():
                signal.signal(sig, handler)

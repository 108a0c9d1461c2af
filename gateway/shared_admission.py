"""One admission count for all the workers of a gateway: a small SQLite table in the directory they share.

Every request that holds a slot or waits for one is a row (`pool`, `pid`, `state`), numbered in arrival order.
A request takes a slot at once when the pool has a free one and nobody waits; else it waits, unless the
queue is full (503). Waiting rows are promoted strictly in arrival order, whichever worker they belong to: a
worker promotes its own waiters when they are first in line and slots are free. So the queue is one FIFO
across workers, and a request is refused only when the whole gateway is full.

A worker that dies (SIGKILL, OOM) cannot give its slots back itself. Each worker holds an exclusive lock on
`alive-<pid>.lock` for its whole life; the kernel drops it when the process dies, however it dies. Rows
whose owner's lock can be taken are a dead worker's, and are deleted: before any refusal, once a second while
anyone waits, and when a worker starts. So a killed worker's slots come back within about a second, and are
never counted twice (a new process that reuses the PID first deletes whatever rows carry it).

A waiter learns that it may go by polling (every `POLL` seconds) or at once when a slot of its own worker is
given back; the poll is one small read per worker, however many requests wait in it.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from gateway.admission import Pool, expire

POLL = 0.02            # seconds between a waiting worker's looks at the table
PURGE_EVERY = 1.0      # seconds between looks for dead workers' rows while anyone waits
QUEUED, RUNNING = 0, 1


class Board:
    """The table, as this process sees it (one connection, used from the event loop's thread only)."""

    def __init__(self, directory: Path, on_dead: Callable[[list[int]], None] = lambda pids: None) -> None:
        self.directory = directory
        self.on_dead = on_dead   # told the PIDs of dead workers whose rows went (their metrics can go too)
        self.pid = os.getpid()
        self._alive = os.open(directory / f"alive-{self.pid}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._alive, fcntl.LOCK_EX)   # held until this process ends
        self._db = sqlite3.connect(directory / "admission.sqlite", timeout=10, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")
        with self._write():
            self._db.execute("CREATE TABLE IF NOT EXISTS admission (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                             "pool TEXT NOT NULL, pid INTEGER NOT NULL, state INTEGER NOT NULL)")
            self._db.execute("CREATE INDEX IF NOT EXISTS admission_pool ON admission (pool, state, id)")
            # rows of an earlier process with this PID
            self._db.execute("DELETE FROM admission WHERE pid = ?", (self.pid,))
        self.purge_dead()

    def close(self) -> None:
        with self._write():
            self._db.execute("DELETE FROM admission WHERE pid = ?", (self.pid,))
        self._db.close()
        os.close(self._alive)
        (self.directory / f"alive-{self.pid}.lock").unlink(missing_ok=True)

    def _write(self) -> sqlite3.Connection:
        """A write transaction (BEGIN IMMEDIATE: the workers take turns) as a context manager."""
        return _Transaction(self._db)  # type: ignore[return-value]

    def counts(self, pool: str) -> tuple[int, int]:
        """(running, queued) of the pool, over every worker."""
        rows = dict(self._db.execute("SELECT state, COUNT(*) FROM admission WHERE pool = ? GROUP BY state",
                                     (pool,)).fetchall())
        return rows.get(RUNNING, 0), rows.get(QUEUED, 0)

    def enter(self, pool: str, slots: int, queue_size: int) -> tuple[int | None, int, int]:
        """A new request: (its row, its state, its place in line); no row when the queue is full."""
        with self._write():
            running, queued = self.counts(pool)
            if running < slots and queued == 0:
                return self._insert(pool, RUNNING), RUNNING, 0
            if queued >= queue_size:
                return None, QUEUED, queued + 1
            return self._insert(pool, QUEUED), QUEUED, queued + 1

    def _insert(self, pool: str, state: int) -> int:
        cursor = self._db.execute("INSERT INTO admission (pool, pid, state) VALUES (?, ?, ?)",
                                  (pool, self.pid, state))
        return int(cursor.lastrowid or 0)

    def promote(self, pool: str, slots: int, mine: set[int]) -> list[int]:
        """Of the first waiters in line that free slots can take, those in `mine`, now running."""
        with self._write():
            running, _ = self.counts(pool)
            free = slots - running
            if free <= 0:
                return []
            first = [row for (row,) in self._db.execute(
                "SELECT id FROM admission WHERE pool = ? AND state = ? ORDER BY id LIMIT ?",
                (pool, QUEUED, free))]
            promoted = [row for row in first if row in mine]
            self._db.executemany("UPDATE admission SET state = ? WHERE id = ?",
                                 [(RUNNING, row) for row in promoted])
            return promoted

    def position(self, pool: str, row: int) -> int:
        (ahead,) = self._db.execute("SELECT COUNT(*) FROM admission WHERE pool = ? AND state = ? AND id < ?",
                                    (pool, QUEUED, row)).fetchone()
        return int(ahead) + 1

    def leave(self, row: int) -> None:
        with self._write():
            self._db.execute("DELETE FROM admission WHERE id = ?", (row,))

    def purge_dead(self) -> int:
        """Delete the rows of workers that have died; how many went."""
        owners = [pid for (pid,) in self._db.execute("SELECT DISTINCT pid FROM admission WHERE pid != ?",
                                                     (self.pid,))]
        dead = [pid for pid in owners if not _alive(self.directory / f"alive-{pid}.lock")]
        if not dead:
            return 0
        with self._write():
            marks = ",".join("?" * len(dead))
            gone = self._db.execute(f"DELETE FROM admission WHERE pid IN ({marks})", dead).rowcount
        self.on_dead(dead)
        return gone


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind: object, *rest: object) -> None:
        self.db.execute("ROLLBACK" if kind is not None else "COMMIT")


def _alive(lock: Path) -> bool:
    """Whether the process that holds `lock` is alive: its lock cannot be taken while it lives."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    lock.unlink(missing_ok=True)
    return False


class SharedPool(Pool):
    """A pool whose slots and queue are counted on a `Board` that every worker of the gateway shares."""

    def __init__(self, name: str, *, slots: int, queue_size: int, max_wait: float, board: Board) -> None:
        super().__init__(name, slots=slots, queue_size=queue_size, max_wait=max_wait)
        self.board = board
        self._waiters: dict[int, asyncio.Future[None]] = {}
        self._wake = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None

    @property
    def active(self) -> int:
        return self.board.counts(self.name)[0]

    @property
    def queued(self) -> int:
        return self.board.counts(self.name)[1]

    async def _acquire(self, deadline: float, max_wait: float | None) -> object:
        row, state, position = self.board.enter(self.name, self.slots, self.queue_size)
        if row is None and self.board.purge_dead():   # a dead worker's rows may be what fills the queue
            row, state, position = self.board.enter(self.name, self.slots, self.queue_size)
        if row is None:
            raise self.reject("queue_full", position, "Server busy: queue full")
        if state == RUNNING:
            return row
        wait, remaining = self.wait_bound(deadline, max_wait)
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(wait, expire, waiter)
        self._waiters[row] = waiter
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll())
        self._wake.set()
        try:
            await waiter
        except BaseException as exc:
            self._waiters.pop(row, None)
            place = self.board.position(self.name, row)
            self.board.leave(row)   # queued or, if promoted as we gave up, running: either way it goes
            self._wake.set()
            raise self.gave_up(exc, place, wait, remaining) from None
        finally:
            timer.cancel()
        return row

    def _release(self, token: object) -> None:
        self.board.leave(int(token))  # type: ignore[call-overload]
        self._wake.set()   # this worker's waiters look at once; the others on their next poll

    async def _poll(self) -> None:
        """While this worker has waiters: promote those first in line, and clear dead workers' rows."""
        purged = time.monotonic()
        while self._waiters:
            self._wake.clear()
            live = {row for row, waiter in self._waiters.items() if not waiter.done()}
            for row in self.board.promote(self.name, self.slots, live):
                waiter = self._waiters.pop(row)
                if waiter.done():          # gave up meanwhile: the slot goes back at once
                    self.board.leave(row)
                else:
                    waiter.set_result(None)
            if time.monotonic() - purged > PURGE_EVERY:
                self.board.purge_dead()
                purged = time.monotonic()
            try:
                await asyncio.wait_for(self._wake.wait(), POLL)
            except TimeoutError:
                pass

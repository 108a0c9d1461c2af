"""A soak: mixed traffic against a running stack for a while, and what each tier holds, sampled as it runs.

The traffic (`mixed_traffic`) mixes what production sees: synchronous requests of 1 to 30 pages with and
without `visualize`; jobs that are streamed to their end or cancelled; bad inputs; clients that give up
mid-request; and bursts past the gateway's admission totals. Every answer is sorted into an outcome; a 5xx
other than the 503 of a full queue is a failure. `sample` reads, per tier, resident memory, open file
descriptors and threads, and for the stack Triton's shared-memory regions, the files of the gateway's run
directory, and the jobs and images kept (and how old the oldest is: retention must delete them). Shared by
`python -m bench.soak` and the short soak of the test suite.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from contract.names import DEFAULT_PIPELINE
from devkit.documents import b64, sample_pdf
from devkit.stack import Stack
from gateway import workers

TIERS = ("gateway", "triton", "vlm")
JOBS = "/api/v2/ocr/jobs"
BAD_BODIES: list[dict[str, object]] = [
    {"file": "not base64 at all!", "fileType": 0},
    {"file": b64(b"%PDF-1.7 truncated"), "fileType": 0},
    {"file": b64(b"GIF89a not an image"), "fileType": 1},
    {"file": "aGVsbG8=", "fileType": 9},
    {"file": b64(sample_pdf(2)[0]), "fileType": 0, "pageRanges": "7-9"},
    {"fileType": 0},
]


@dataclass
class TierSample:
    rss: int = 0
    fds: int = 0
    threads: int = 0


@dataclass
class Sample:
    seconds: float                                      # since the soak began
    tiers: dict[str, TierSample] = field(default_factory=dict)
    shm: int = 0                                        # Triton's regions in /dev/shm
    run_files: int = 0                                  # in the gateway's run directory
    data_files: int = 0                                 # of the jobs and answers' images kept
    data_bytes: int = 0
    oldest: float = 0.0                                 # seconds since a kept job or answer was written


def gateway_run_dir(stack: Stack) -> Path | None:
    """The directory `python -m gateway` made for its workers (slots, rate limits, metrics)."""
    found = list(Path(tempfile.gettempdir()).glob(f"{workers.PREFIX}{stack.pid('gateway')}-*"))
    return found[0] if found else None


def _files(directory: Path | None) -> list[Path]:
    if directory is None:
        return []
    found = []
    for path in directory.rglob("*"):
        try:
            if path.is_file():
                found.append(path)
        except OSError:   # gone meanwhile
            continue
    return found


def sample(stack: Stack, started: float, data: Path) -> Sample:
    """The tiers' figures now; `data` is the jobs' data directory (HPS_JOB_DATA_DIR)."""
    out = Sample(time.monotonic() - started)
    for tier in TIERS:
        figures = TierSample()
        for proc in stack.processes(tier):
            try:
                figures.rss += proc.memory_info().rss
                figures.fds += proc.num_fds()
                figures.threads += proc.num_threads()
            except psutil.Error:   # a process that ended between listing and reading
                continue
        out.tiers[tier] = figures
    triton = stack.supervisor.pid("triton")
    shm = Path("/dev/shm")
    out.shm = len(list(shm.glob(f"paddleocr_vl_{triton}_*"))) if triton and shm.is_dir() else 0
    out.run_files = len(_files(gateway_run_dir(stack)))
    kept = _files(data)
    out.data_files = len(kept)
    last_written: dict[Path, float] = {}   # <data>/jobs/<id> or <data>/images/<answer>: its newest file
    for path in kept:
        try:
            stat = path.stat()
        except OSError:
            continue
        out.data_bytes += stat.st_size
        owner = data / path.relative_to(data).parts[0]
        if owner.name in ("jobs", "images") and len(path.relative_to(owner).parts) > 1:
            unit = owner / path.relative_to(owner).parts[0]
            last_written[unit] = max(last_written.get(unit, 0.0), stat.st_mtime)
    # Retention counts from a job's end (its last line written) and from an answer's images being written.
    out.oldest = max((time.time() - t for t in last_written.values()), default=0.0)
    return out


class Traffic:
    """The clients of the soak; `outcomes` counts what they got."""

    def __init__(self, url: str, *, key: str | None = None, burst: int = 96, largest: int = 30,
                 seed: int = 7) -> None:
        """`largest`: the most pages a document of the traffic has (a short soak keeps it small, so that
        its warm-up sees the largest requests several times and what grows after it is not their first)."""
        self.url, self.burst, self.largest = url, burst, largest
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.outcomes: Counter[str] = Counter()
        self.failures: list[str] = []
        self._random = random.Random(seed)
        self._pdfs: dict[int, str] = {}

    def _pdf(self, pages: int) -> str:
        if pages not in self._pdfs:
            self._pdfs[pages] = b64(sample_pdf(pages)[0])
        return self._pdfs[pages]

    def _count(self, kind: str, response: httpx.Response, expected: tuple[int, ...] = (200,)) -> None:
        status = response.status_code
        if status in expected:
            self.outcomes[f"{kind} {status}"] += 1
        elif status == 503:
            self.outcomes[f"{kind} 503"] += 1   # a full queue says so, with Retry-After
        else:
            self.outcomes[f"{kind} unexpected {status}"] += 1
            self.failures.append(f"{kind}: {status} {response.text[:200]}")

    async def _sync(self, http: httpx.AsyncClient) -> None:
        pages = self._random.choice([n for n in (1, 1, 2, 3, 5, 10, 30) if n <= self.largest])
        body = {"file": self._pdf(pages), "fileType": 0, "visualize": self._random.random() < 0.3}
        self._count("sync", await http.post(f"{self.url}/layout-parsing", json=body, headers=self.headers))

    async def _job(self, http: httpx.AsyncClient) -> None:
        pages = self._random.choice([n for n in (3, 5, 10, 20) if n <= self.largest])
        fields = {"model": DEFAULT_PIPELINE, "optionalPayload": '{"visualize": false}'}
        response = await http.post(f"{self.url}{JOBS}", headers=self.headers, data=fields,
                                   files={"file": ("doc.pdf", sample_pdf(pages)[0])})
        self._count("job submit", response, (200, 429))
        if response.status_code != 200:
            return
        job = response.json()["data"]["jobId"]
        cancel = self._random.random() < 0.3
        while True:
            answer = await http.get(f"{self.url}{JOBS}/{job}", headers=self.headers)
            if answer.status_code != 200:
                self._count("job status", answer)
                return
            status = answer.json()["data"]
            started = status["extractProgress"]["extractedPages"] > 0
            if status["state"] in ("done", "failed") or (cancel and started):
                break
            await asyncio.sleep(0.5)
        if cancel:
            self._count("job cancel", await http.delete(f"{self.url}{JOBS}/{job}", headers=self.headers))
        elif status["state"] == "done":
            lines = await http.get(status["resultUrl"]["jsonUrl"])
            ok = lines.status_code == 200 and len(lines.text.strip().splitlines()) == pages
            self.outcomes["job done" if ok else "job unexpected result"] += 1
            if not ok:
                self.failures.append(f"job {job}: {lines.status_code}, {lines.text[:200]}")
        else:
            self.outcomes["job unexpected failed"] += 1
            self.failures.append(f"job {job}: {status.get('errorMsg')}")

    async def _bad(self, http: httpx.AsyncClient) -> None:
        body = self._random.choice(BAD_BODIES)
        response = await http.post(f"{self.url}/layout-parsing", json=body, headers=self.headers)
        self._count("bad input", response, (400, 422))

    async def _gives_up(self, http: httpx.AsyncClient) -> None:
        body = {"file": self._pdf(min(10, self.largest)), "fileType": 0, "visualize": True}
        try:
            async with asyncio.timeout(self._random.uniform(0.3, 2.0)):
                await http.post(f"{self.url}/layout-parsing", json=body, headers=self.headers)
            self.outcomes["gave up too late"] += 1
        except TimeoutError:
            self.outcomes["gave up"] += 1

    async def _burst(self, http: httpx.AsyncClient) -> None:
        body = {"file": self._pdf(1), "fileType": 0, "visualize": False}
        url = f"{self.url}/layout-parsing"
        answers = await asyncio.gather(*(http.post(url, json=body, headers=self.headers)
                                         for _ in range(self.burst)))
        for response in answers:
            self._count("burst", response)

    async def run(self, seconds: float) -> None:
        """Every client in a loop until `seconds` have passed (what is under way then finishes)."""
        until = time.monotonic() + seconds
        loops = [(self._sync, 0.0), (self._sync, 0.0), (self._job, 0.5), (self._bad, 0.5),
                 (self._gives_up, 2.0), (self._burst, 20.0)]

        async def loop(step: object, pause: float) -> None:
            async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=None)) as http:
                while time.monotonic() < until:
                    try:
                        await step(http)   # type: ignore[operator]
                    except httpx.HTTPError as exc:
                        self.outcomes["client error"] += 1
                        self.failures.append(f"{getattr(step, '__name__', step)}: {exc!r}")
                    await asyncio.sleep(pause)

        await asyncio.gather(*(loop(step, pause) for step, pause in loops))


def growth(before: Sample, after: Sample) -> dict[str, float]:
    """From `before` to `after` (both taken with no request in flight): relative RSS growth per tier, and
    the change of descriptors, threads, shared-memory regions and run-directory files."""
    out: dict[str, float] = {}
    for tier in TIERS:
        was, now = before.tiers[tier], after.tiers[tier]
        out[f"{tier} rss"] = (now.rss - was.rss) / was.rss if was.rss else 0.0
        out[f"{tier} fds"] = now.fds - was.fds
        out[f"{tier} threads"] = now.threads - was.threads
    out["shm regions"] = after.shm - before.shm
    out["run files"] = after.run_files - before.run_files
    return out

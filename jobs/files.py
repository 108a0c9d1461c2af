"""The files of the jobs, under one data directory (a shared one when replicas share the jobs).

    <data>/jobs/<job id>/input            the submitted or fetched file
    <data>/jobs/<job id>/lines/<n>.json   the JSONL line of the job's n-th page (0-based), once it is done
    <data>/jobs/<job id>/files/<name>     the images its lines link to

Every file is written to a temporary name and renamed, so a reader never sees half of one and a crash never
leaves one that looks finished. Names come from this code or are checked against a plain pattern, so no path
can leave the job's directory.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def safe_name(name: str) -> bool:
    return bool(_NAME.fullmatch(name)) and ".." not in name


class JobFiles:
    def __init__(self, data_dir: str | Path) -> None:
        self.root = Path(data_dir) / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)

    def _dir(self, job_id: str) -> Path:
        if not _JOB_ID.fullmatch(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.root / job_id

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def save_input(self, job_id: str, data: bytes) -> None:
        self._write(self._dir(job_id) / "input", data)

    def read_input(self, job_id: str) -> bytes | None:
        path = self._dir(job_id) / "input"
        return path.read_bytes() if path.is_file() else None

    def save_line(self, job_id: str, index: int, line: bytes) -> None:
        self._write(self._dir(job_id) / "lines" / f"{index:06d}.json", line)

    def read_line(self, job_id: str, index: int) -> bytes | None:
        path = self._dir(job_id) / "lines" / f"{index:06d}.json"
        return path.read_bytes() if path.is_file() else None

    def save_file(self, job_id: str, name: str, data: bytes) -> None:
        if not safe_name(name):
            raise ValueError(f"not a file name: {name!r}")
        self._write(self._dir(job_id) / "files" / name, data)

    def file_path(self, job_id: str, name: str) -> Path | None:
        """The stored file `name` of the job, or None (also for a name that could not be one of ours)."""
        if not _JOB_ID.fullmatch(job_id) or not safe_name(name):
            return None
        path = self._dir(job_id) / "files" / name
        return path if path.is_file() else None

    def delete(self, job_id: str) -> None:
        shutil.rmtree(self._dir(job_id), ignore_errors=True)

"""The stored images of answers, one directory each, under the jobs' data directory (shared by replicas).

    <data>/images/<answer id>/<name>

Each file is written to a temporary name and renamed, so a reader never sees half of one. An answer's id is
random (128 bits) and names are this package's own, checked against a plain pattern when served: no path
leaves the directory. An answer's directory is deleted once it is older than the retention.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path

_ANSWER = re.compile(r"^[0-9a-f]{32}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


class AnswerImages:
    def __init__(self, data_dir: str | Path) -> None:
        self.root = Path(data_dir) / "images"
        self.root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def new_answer() -> str:
        return uuid.uuid4().hex

    def save(self, answer: str, name: str, data: bytes) -> None:
        if not (_ANSWER.fullmatch(answer) and _NAME.fullmatch(name)):
            raise ValueError(f"not an image of an answer: {answer}/{name}")
        folder = self.root / answer
        folder.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temporary, folder / name)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def path(self, answer: str, name: str) -> Path | None:
        """The stored image, or None (also for an id or name that could not be one of ours)."""
        if not (_ANSWER.fullmatch(answer) and _NAME.fullmatch(name)) or ".." in name:
            return None
        path = self.root / answer / name
        return path if path.is_file() else None

    def sweep(self, retention: float, now: float | None = None) -> int:
        """Delete the answers stored more than `retention` seconds ago; how many went."""
        cutoff = (time.time() if now is None else now) - retention
        removed = 0
        for folder in self.root.iterdir():
            try:
                if _ANSWER.fullmatch(folder.name) and folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
            except FileNotFoundError:   # another replica swept it first
                continue
        return removed

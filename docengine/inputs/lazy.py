"""Pages of an open file, each decoded when read: a request holds the pages it works on, not its file."""

from __future__ import annotations

import asyncio
import operator
import weakref
from collections.abc import Sequence
from concurrent.futures import Executor
from typing import overload

import numpy as np

from docengine.types import DecodedDocument


class LazyPages(Sequence[np.ndarray]):
    """The pages of an open file, each decoded when it is read (from any thread); `close()` closes the file,
    as garbage collection does when it was not called. Reading a page again decodes it again."""

    executor: Executor | None = None   # where `read_page` decodes: None is asyncio's default pool

    def __init__(self, count: int, closer: weakref.finalize) -> None:
        self._count = count
        self._closer = closer
        self.turn = asyncio.Lock()     # `read_page`: one decode of this document at a time

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, index: slice) -> list[np.ndarray]: ...

    def __getitem__(self, index: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        position = operator.index(index)
        if position < 0:
            position += self._count
        if not 0 <= position < self._count:
            raise IndexError(f"page index {index} out of range for {self._count} pages")
        return self._decode(position)

    @property
    def closed(self) -> bool:
        return not self._closer.alive

    def close(self) -> None:
        self._closer()

    def _decode(self, index: int) -> np.ndarray:
        raise NotImplementedError


async def read_page(doc: DecodedDocument, position: int) -> np.ndarray:
    """The request's page at `position`, decoded in a worker thread when it is not yet. One page of a document
    is decoded at a time, so that the threads serve the documents in flight in turn rather than the longest
    one first."""
    pages, index = doc.pages, doc.index(position)
    if not isinstance(pages, LazyPages):
        return pages[index]
    async with pages.turn:
        return await asyncio.get_running_loop().run_in_executor(pages.executor, pages.__getitem__, index)

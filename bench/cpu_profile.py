"""The CPU profile end to end: seconds per page and character accuracy through the whole local stack.

    python -m bench.cpu_profile [--pages 8] [--repeat 3]

The stack is `make up`'s, defaults unchanged: gateway -> Triton (PicoDet layout) -> the offline recogniser
(`python -m vlm_server`, PP-OCR on ONNX Runtime). The documents are the sample PDFs of `tests/documents.py`
(title, heading, English and Chinese lines, formula, ruled table, header, footer), sent as Base64, rendered by
the engine at its default scale 2.0. Two timings, medians of `--repeat`:

- a 1-page PDF alone: seconds per page when nothing overlaps;
- a `--pages`-page PDF: wall time / pages, where one page's layout overlaps another's recognition, with the
  CPU seconds per page each tier spent.

Accuracy is `char_accuracy` (1 - Levenshtein / length, whitespace ignored) of each truth line against the
closest line of the page's recognised blocks, and of the table's cells (in order) against the cells of the
page's table block; totals are weighted by characters.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import time

import httpx

from bench.measure import bench_stack, cli, machine
from devkit.documents import CHINESE, PageTruth, b64, char_accuracy, sample_pdf
from devkit.stack import Stack

TIERS = ("gateway", "triton", "vlm")
CELL = re.compile(r"<td[^>]*>(.*?)</td>", re.S)


def score_page(truth: PageTruth, page: dict) -> dict[str, tuple[float, int]]:
    """Kind of text -> (accuracy, characters) for one page of an answer."""
    blocks = page["prunedResult"]["parsing_res_list"]
    lines = [line for b in blocks if b["block_label"] != "table" for line in b["block_content"].split("\n")]
    out: dict[str, list[tuple[float, int]]] = {"English lines": [], "Chinese line": [], "table cells": []}
    for text in truth.texts:
        best = max((char_accuracy(text, line) for line in lines), default=0.0)
        out["Chinese line" if text == CHINESE else "English lines"].append((best, len("".join(text.split()))))
    if truth.table:
        cells = "".join(c for row in truth.table for c in row)
        found = [CELL.findall(b["block_content"]) for b in blocks if b["block_label"] == "table"]
        best = max((char_accuracy(cells, "".join(f)) for f in found), default=0.0)
        out["table cells"].append((best, len("".join(cells.split()))))
    return {kind: weighted(scores) for kind, scores in out.items() if scores}


def weighted(scores: list[tuple[float, int]]) -> tuple[float, int]:
    chars = sum(n for _, n in scores)
    return sum(a * n for a, n in scores) / chars, chars


async def parse(http: httpx.AsyncClient, stack: Stack, pdf: bytes) -> tuple[float, dict]:
    start = time.perf_counter()
    response = await http.post(f"{stack.url}/layout-parsing",
                               json={"file": b64(pdf), "fileType": 0, "visualize": False})
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
    return time.perf_counter() - start, response.json()


async def measure(stack: Stack, pages: int, repeat: int) -> int:
    one, _ = sample_pdf(1)
    many, truths = sample_pdf(pages)
    async with httpx.AsyncClient(timeout=600) as http:
        await parse(http, stack, one)  # warm-up: models and connections
        alone = [(await parse(http, stack, one))[0] for _ in range(repeat)]
        walls, cpu = [], dict.fromkeys(TIERS, 0.0)
        for _ in range(repeat):
            before = {t: stack.cpu_seconds(t) for t in TIERS}
            wall, answer = await parse(http, stack, many)
            walls.append(wall)
            for t in TIERS:
                cpu[t] += stack.cpu_seconds(t) - before[t]
    print(f"1-page PDF alone:      {statistics.median(alone):.2f} s per page")
    print(f"{pages}-page PDF:            {statistics.median(walls) / pages:.2f} s per page "
          f"({statistics.median(walls):.2f} s per document)")
    print("CPU seconds per page:  " + ", ".join(f"{t} {cpu[t] / (repeat * pages):.2f}" for t in TIERS))

    results = answer["result"]["layoutParsingResults"]
    kinds: dict[str, list[tuple[float, int]]] = {}
    for truth, page in zip(truths, results, strict=True):
        for kind, score in score_page(truth, page).items():
            kinds.setdefault(kind, []).append(score)
    print(f"character accuracy over the {pages} pages (whitespace ignored):")
    for kind, scores in kinds.items():
        accuracy, chars = weighted(scores)
        print(f"  {kind:14} {accuracy:7.2%} of {chars} characters")
    total, chars = weighted([s for scores in kinds.values() for s in scores])
    print(f"  {'all':14} {total:7.2%} of {chars} characters")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=8, help="pages of the multi-page document")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing; the median is printed")
    args = parser.parse_args(argv)
    print(f"CPU profile: {machine()}")
    print("local stack as `make up` runs it: PicoDet layout, PP-OCR recogniser; sample PDFs at scale 2.0")
    with bench_stack() as stack:
        return asyncio.run(measure(stack, args.pages, args.repeat))


if __name__ == "__main__":
    sys.exit(cli(main))

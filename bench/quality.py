"""Parsing quality on real published documents: what the stack gives back of each page's own text.

    python -m bench.quality [--text-source vlm|auto|pdf] [--inputs pdf,png] [--json FILE] [--cache DIR]

The pages are those of `bench.corpus` (real manuals and reports shipped inside Debian packages, fetched into
the cache on first use). Each page is sent alone through the local stack as `make up` runs it (PicoDet
layout, the PP-OCR recogniser), once as its one-page PDF and once as its PNG render (the path of a scan).
The ground truth is the page's own text layer. Per page and overall:

- recall and precision of characters: the answer's and the truth's non-space characters as bags, so that
  reading order does not count (overall: summed over pages, so weighted by characters);
- order: normalised Levenshtein similarity of the whitespace-free texts, block contents in answer order
  (overall: the mean over pages);
- seconds per page (one request at a time) and the recogniser calls per page (the engine's counter).

Both texts are normalised alike: NFKC (ligatures, full-width forms), no whitespace or control characters.
An answer's text is its `parsing_res_list` contents: tables without their HTML tags, formulas without their
`$` and LaTeX escapes. `--text-source` sends the request option of that name (left out by default).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import html
import json
import re
import statistics
import sys
import time
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from rapidfuzz.distance import Levenshtein

from bench.corpus import Page, prepare
from bench.measure import bench_stack, cli, machine
from devkit.stack import ROOT, Stack

DEFAULT_CACHE = ROOT / ".cache" / "quality"
# The markup of tables and pictures, in blocks that hold such markup: not "<file_name>" in a block's text.
MARKUP = re.compile(r"<(?:table|img|div)\b", re.IGNORECASE)
TAG = re.compile(r"<[^<>]+>")
LATEX_ESCAPE = re.compile(r"\\backslash ?|\\(?=[#$%&_{}])")
FORMULAS = ("display_formula", "inline_formula", "formula")


def normalise(text: str) -> str:
    """What is compared: NFKC characters without whitespace, control or format characters."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(c for c in text if not c.isspace() and unicodedata.category(c)[0] != "C")


def block_text(block: dict) -> str:
    """A block's content as plain text: tags of tables (and images in them) and formula markup removed."""
    content = block.get("block_content") or ""
    if MARKUP.search(content):
        content = html.unescape(TAG.sub(" ", content))
    if block.get("block_label") in FORMULAS:
        content = LATEX_ESCAPE.sub(lambda m: "\\" if m.group(0).startswith("\\backslash") else "",
                                   content.replace("$", ""))
    return content


def answer_text(result: dict) -> str:
    return "\n".join(block_text(b) for page in result["layoutParsingResults"]
                     for b in page["prunedResult"]["parsing_res_list"])


@dataclass
class Score:
    page: str
    input: str
    truth_chars: int
    answer_chars: int
    matched: int
    order: float
    seconds: float
    blocks: dict[str, int]   # dataInfo's count of blocks per text source, when the engine reports one

    @property
    def recall(self) -> float:
        return self.matched / self.truth_chars if self.truth_chars else 1.0

    @property
    def precision(self) -> float:
        return self.matched / self.answer_chars if self.answer_chars else 1.0


def score(page: Page, kind: str, result: dict, seconds: float) -> Score:
    truth, answer = normalise(page.truth), normalise(answer_text(result))
    matched = sum((Counter(truth) & Counter(answer)).values())
    order = Levenshtein.normalized_similarity(truth, answer) if truth or answer else 1.0
    sources = result.get("dataInfo", {}).get("blockSources") or {}
    return Score(page.name, kind, len(truth), len(answer), matched, order, seconds, dict(sources))


def body(page: Page, kind: str, text_source: str | None) -> dict:
    path = page.pdf if kind == "pdf" else page.png
    out: dict = {"file": base64.b64encode(path.read_bytes()).decode(), "fileType": 0 if kind == "pdf" else 1,
                 "visualize": False}
    if text_source is not None:
        out["textSource"] = text_source
    return out


async def vlm_calls(http: httpx.AsyncClient, stack: Stack) -> float:
    """The engine's VLM call counter, read after its exporter's period (1 s) so that it is current."""
    await asyncio.sleep(1.5)
    text = (await http.get(stack.triton_metrics)).text
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("hps_engine_vlm_calls_total"))


async def run(stack: Stack, pages: list[Page], kinds: list[str], text_source: str | None) -> dict:
    scores: list[Score] = []
    calls: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=600) as http:
        await http.post(f"{stack.url}/layout-parsing", json=body(pages[0], "pdf", text_source))  # warm-up
        for kind in kinds:
            before = await vlm_calls(http, stack)
            for page in pages:
                start = time.perf_counter()
                response = await http.post(f"{stack.url}/layout-parsing", json=body(page, kind, text_source))
                seconds = time.perf_counter() - start
                if response.status_code != 200:
                    raise RuntimeError(f"{page.name} {kind}: HTTP {response.status_code}: "
                                       f"{response.text[:300]}")
                scores.append(score(page, kind, response.json()["result"], seconds))
                print(row(scores[-1]), flush=True)
            calls[kind] = (await vlm_calls(http, stack) - before) / len(pages)
    return {"scores": scores, "calls": calls}


HEADER = "| page | input | chars | recall | precision | order | s/page |\n|---|---|---|---|---|---|---|"


def row(s: Score) -> str:
    return (f"| {s.page} | {s.input} | {s.truth_chars} | {s.recall:.3f} | {s.precision:.3f} | {s.order:.3f} "
            f"| {s.seconds:.2f} |")


def summary(scores: list[Score], calls: dict[str, float]) -> list[str]:
    lines = ["| input | pages | recall | precision | order | s/page | recogniser calls/page "
             "| block sources |",
             "|---|---|---|---|---|---|---|---|"]
    for kind in dict.fromkeys(s.input for s in scores):
        mine = [s for s in scores if s.input == kind]
        matched = sum(s.matched for s in mine)
        truth, answer = sum(s.truth_chars for s in mine), sum(s.answer_chars for s in mine)
        sources: Counter[str] = Counter()
        for s in mine:
            sources.update(s.blocks)
        lines.append(
            f"| {kind} | {len(mine)} | {matched / truth:.4f} | {matched / answer:.4f} "
            f"| {statistics.mean(s.order for s in mine):.4f} "
            f"| {statistics.mean(s.seconds for s in mine):.2f} "
            f"| {calls.get(kind, float('nan')):.1f} | {dict(sources) or '-'} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--text-source", choices=("vlm", "auto", "pdf"), default=None,
                        help="the request's textSource (default: left out, the server's default)")
    parser.add_argument("--inputs", default="pdf,png", help="pdf, png or both, comma-separated")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the documents are kept")
    parser.add_argument("--only", default="", help="only pages whose name contains this")
    parser.add_argument("--json", type=Path, default=None, help="write every score to this file")
    args = parser.parse_args(argv)
    kinds = [k for k in args.inputs.split(",") if k]
    if not kinds or set(kinds) - {"pdf", "png"}:
        parser.error("--inputs takes pdf, png or pdf,png")
    pages = [p for p in prepare(args.cache) if args.only in p.name]
    documents = len({p.document for p in pages})
    print(f"quality: {machine()}")
    print(f"{len(pages)} pages of {documents} documents; inputs {', '.join(kinds)}; "
          f"textSource {args.text_source or '(server default)'}")
    print(HEADER)
    with bench_stack() as stack:
        result = asyncio.run(run(stack, pages, kinds, args.text_source))
    print()
    print("\n".join(summary(result["scores"], result["calls"])))
    worst = sorted(result["scores"], key=lambda s: min(s.recall, s.precision, s.order))[:8]
    print("\nworst pages (lowest of recall, precision, order):")
    print(HEADER)
    for s in worst:
        print(row(s))
    if args.json is not None:
        args.json.write_text(json.dumps({"scores": [asdict(s) for s in result["scores"]],
                                         "calls": result["calls"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(cli(main))

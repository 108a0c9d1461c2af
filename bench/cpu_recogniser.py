"""Speed and accuracy of the offline recogniser on the crops of real pages at the pipeline's scale (2.0).

    python -m bench.cpu_recogniser [--repeat 3] [--workers 2]

Two pages: a full A4 page of wrapped paragraphs (`tests/vlm_server/pages.py`) and the mixed sample page
of `tests/documents.py` (title, lines, Chinese, formula, ruled table). Each page's crops are recognised
(1) in process, one after another, and (2) through the HTTP server, all at once as the engine sends them;
the CPU seconds of (2) are what the page costs, whatever else shares the machine.
Accuracy is 1 - Levenshtein / length over all crops of a page, ignoring whitespace ("chars") and with
whitespace runs collapsed to one space ("spaced"). Needs the dev extra (pymupdf makes the pages).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import statistics
import time

import httpx

from devkit.documents import edit_distance, sample_pdf
from devkit.pages import Crop, block_crops, typical_page
from devkit.servers import serve_in_thread
from vlm_server.app import create_app
from vlm_server.recogniser import OcrRecogniser, Task
from vlm_server.settings import VLMServerSettings

PROMPTS = {"text": "OCR:", "table": "Table Recognition:", "formula": "Formula Recognition:"}
TASKS = {"text": Task.OCR, "table": Task.TABLE, "formula": Task.FORMULA}


def as_text(kind: str, answer: str) -> str:
    """The answer's plain text, comparable with the crop's truth."""
    if kind == "table":
        answer = " ".join(re.split(r"<fcel>|<ecel>|<nl>", answer))
    if kind == "formula":
        answer = answer.removeprefix(r"\[").removesuffix(r"\]").replace("\\", "")
    return answer


def accuracy(crops: list[Crop], answers: list[str]) -> tuple[float, float]:
    squeeze, spaced = [0, 0], [0, 0]
    for crop, answer in zip(crops, answers, strict=True):
        got = as_text(crop.kind, answer)
        for acc, norm in ((squeeze, lambda s: "".join(s.split())), (spaced, lambda s: " ".join(s.split()))):
            truth = norm(crop.truth)
            acc[0] += edit_distance(truth, norm(got))
            acc[1] += len(truth)
    return 1 - squeeze[0] / squeeze[1], 1 - spaced[0] / spaced[1]


async def over_http(url: str, model: str, crops: list[Crop]) -> list[str]:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:

        async def one(crop: Crop) -> str:
            data_url = "data:image/jpeg;base64," + base64.b64encode(crop.jpeg).decode()
            body = {
                "model": model,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": data_url}},
                            {"type": "text", "text": PROMPTS[crop.kind]},
                        ],
                    }
                ],
                "temperature": 0,
                "max_completion_tokens": 4096,
            }
            response = await client.post("/v1/chat/completions", json=body)
            response.raise_for_status()
            return response.json()["choices"][0]["message"]["content"]

        return await asyncio.gather(*(one(c) for c in crops))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is printed")
    parser.add_argument("--workers", type=int, default=2, help="server worker threads (HPS_VLM_WORKERS)")
    args = parser.parse_args()

    pages = {"full text page": block_crops(typical_page()), "sample page": block_crops(sample_pdf(1)[0])}
    settings = VLMServerSettings(vlm_workers=args.workers)
    recogniser = OcrRecogniser(threads=settings.ort_threads)
    print(
        f"{os.cpu_count()} cores, {args.workers} workers x {settings.ort_threads} ONNX Runtime threads, "
        f"median of {args.repeat} runs; seconds per page: one crop after another in process, all crops at "
        "once over HTTP, and the CPU seconds of the HTTP run"
    )
    print(f"{'page':15} {'crops':>5} {'in-process':>10} {'HTTP':>6} {'CPU':>6} {'chars':>7} {'spaced':>7}")
    with serve_in_thread(create_app(settings, recogniser)) as url:
        for name, crops in pages.items():
            walls, https, cpus = [], [], []
            for _ in range(args.repeat):
                wall = time.perf_counter()
                answers = [recogniser.recognise(c.image, TASKS[c.kind]) for c in crops]
                walls.append(time.perf_counter() - wall)
                wall, cpu = time.perf_counter(), time.process_time()
                served = asyncio.run(over_http(url, settings.served_model_name, crops))
                https.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
            chars, spaced = accuracy(crops, served)
            assert accuracy(crops, answers) == (chars, spaced), "HTTP and in-process answers differ"
            seconds = " ".join(
                f"{statistics.median(v):>{w}.2f}" for v, w in ((walls, 10), (https, 6), (cpus, 6))
            )
            print(f"{name:15} {len(crops):>5} {seconds} {chars:>7.2%} {spaced:>7.2%}")


if __name__ == "__main__":
    main()

"""A synthetic OpenAI-compatible recogniser with a fixed service time and a fixed parallelism.

It stands in for vLLM where the point is orchestration, not recognition: Triton-model tests, fault tests and
the orchestration benchmark. Like vLLM's continuous batching it serves up to `parallel` requests at once, each
taking `service_time` seconds; more wait in line. So its bound is `parallel / service_time` requests per
second, and anything above it measures how well the tiers in front keep it busy. Answers are deterministic:
OTSL for table prompts, LaTeX for formulas, a located text for spotting, a fixed sentence otherwise.

    python -m vlm_server.synthetic --port 8118 --service-time 0.2 --parallel 64
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

ANSWERS = {
    "Table Recognition:": "<fcel>Model<fcel>Pages<nl><fcel>Layout<fcel>12<nl>",
    "Formula Recognition:": "\\[E = mc^2\\]",
    "Chart Recognition:": "Year | Value\n2024 | 1\n2025 | 2",
    # a text and its quad, corners normalised to 0..1000 over the image, as PaddleOCR-VL 1.5 spots
    "Spotting:": "Synthetic" + "".join(f"<|LOC_{v}|>" for v in (100, 100, 600, 100, 600, 200, 100, 200)),
}
DEFAULT_ANSWER = "Synthetic recognised text."


def create_app(
    *, service_time: float = 0.05, parallel: int = 64, model: str = "PaddleOCR-VL-1.6-0.9B"
) -> FastAPI:
    app = FastAPI(title="synthetic recogniser")
    slots = asyncio.Semaphore(parallel)
    stats: dict[str, Any] = {"served": 0, "in_flight": 0, "peak_in_flight": 0, "prompts": []}
    app.state.stats = stats

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model, "object": "model", "owned_by": "synthetic"}]}

    @app.get("/stats")
    async def get_stats() -> dict[str, Any]:
        return {k: v for k, v in stats.items() if k != "prompts"}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        prompt = next(
            (part.get("text", "") for part in body["messages"][0]["content"] if part.get("type") == "text"),
            "",
        )
        async with slots:
            stats["in_flight"] += 1
            stats["peak_in_flight"] = max(stats["peak_in_flight"], stats["in_flight"])
            try:
                await asyncio.sleep(service_time)
            finally:
                stats["in_flight"] -= 1
        stats["served"] += 1
        text = ANSWERS.get(prompt, DEFAULT_ANSWER)
        return JSONResponse(
            {
                "id": f"chatcmpl-{stats['served']}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", model),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8118)
    parser.add_argument("--service-time", type=float, default=0.05)
    parser.add_argument("--parallel", type=int, default=64)
    parser.add_argument("--model", default="PaddleOCR-VL-1.6-0.9B")
    args = parser.parse_args()
    app = create_app(service_time=args.service_time, parallel=args.parallel, model=args.model)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()

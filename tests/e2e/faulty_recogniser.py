"""A recogniser that misbehaves on demand, for fault tests: a small real server, switched at run time.

It speaks the same chat-completions subset as the synthetic recogniser and answers like it in mode `ok`.
`POST /control {"mode": ..., "delay": ...}` switches it, so one stack can face several faults in turn:

    ok          answers after `delay` seconds
    not_json    HTTP 200 whose body is not JSON
    no_choices  HTTP 200 JSON without `choices`

`GET /stats` counts the completion calls received, so a test can see whether calls keep coming.

    python -m tests.e2e.faulty_recogniser --port 8118
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from vlm_server.synthetic import ANSWERS, DEFAULT_ANSWER

MODES = ("ok", "not_json", "no_choices")


def create_app() -> FastAPI:
    app = FastAPI(title="faulty recogniser")
    state: dict[str, Any] = {"mode": "ok", "delay": 0.05, "calls": 0, "in_flight": 0, "last_call": 0.0}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        return dict(state)

    @app.post("/control")
    async def control(request: Request) -> dict[str, Any]:
        body = await request.json()
        if body.get("mode", state["mode"]) not in MODES:
            return JSONResponse({"error": f"mode must be one of {MODES}"}, status_code=400)
        state.update({k: body[k] for k in ("mode", "delay") if k in body})
        return dict(state)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await request.json()
        state["calls"] += 1
        state["last_call"] = time.time()
        state["in_flight"] += 1
        try:
            await asyncio.sleep(state["delay"])
        finally:
            state["in_flight"] -= 1
        if state["mode"] == "not_json":
            return PlainTextResponse("<html><body>upstream proxy error</body></html>")
        if state["mode"] == "no_choices":
            return JSONResponse({"id": "chatcmpl-0", "object": "chat.completion", "model": body.get("model")})
        parts = body["messages"][0]["content"]
        prompt = next((p.get("text", "") for p in parts if p.get("type") == "text"), "")
        return JSONResponse({
            "id": f"chatcmpl-{state['calls']}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": ANSWERS.get(prompt, DEFAULT_ANSWER)}}],
        })

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8118)
    args = parser.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()

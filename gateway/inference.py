"""`POST /layout-parsing` and `POST /restructure-pages`: checked body -> slot -> Triton -> envelope.

The whole request is bounded by `HPS_INFERENCE_TIMEOUT`, counted from its arrival. The slot and the Triton
call run in a task that is cancelled when the client disconnects, which frees the slot and cancels the gRPC
call (the model sees `request.is_cancelled()`). The model's envelope is returned byte for byte, with its
`errorCode` as the HTTP status; with `HPS_RETURN_IMG_URLS`, its images are stored and linked first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Request, Response

from contract.models import (
    LayoutParsingEnvelope,
    LayoutParsingRequest,
    RestructurePagesEnvelope,
    RestructurePagesRequest,
)
from gateway import context
from gateway.admission import Pool
from gateway.dependencies import ForwardedBody, get_pools, get_settings, get_triton, json_body
from gateway.errors import ClientDisconnected
from gateway.openapi import error_responses, success_headers
from gateway.openapi import json_body as body_doc
from gateway.settings import Settings
from gateway.triton import TritonClient
from imagelinks import ImageLinks

T = TypeVar("T")

LAYOUT_EXAMPLE = {"file": "https://example.com/report.pdf", "fileType": 0, "useLayoutDetection": True,
                  "temperature": 0, "prettifyMarkdown": True, "visualize": False}
RESTRUCTURE_EXAMPLE = {
    "pages": [{"prunedResult": {"width": 1654, "height": 2339, "parsing_res_list": []},
               "markdownImages": {}}],
    "mergeTables": True, "relevelTitles": True, "concatenatePages": False}


async def until_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it if the client disconnects first (the body must have been read)."""

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # the request itself is cancelled (shutdown): wind the work down first
        task.cancel()
        watcher.cancel()
        await asyncio.gather(task, watcher, return_exceptions=True)
        raise
    watcher.cancel()
    if not task.done():  # the client left
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise ClientDisconnected()
    return task.result()


async def forward(request: Request, model: str, pool: Pool, body: ForwardedBody, settings: Settings,
                  triton: TritonClient) -> Response:
    ctx = context.current() or context.RequestContext()
    deadline = ctx.started + settings.inference_timeout

    links: ImageLinks | None = getattr(request.app.state, "image_links", None)

    async def work() -> Response:
        async with pool.slot(deadline):
            output = await triton.infer(model, body.payload, log_id=body.log_id,
                                        seconds=deadline - time.monotonic())
        answer = output.body
        if links is not None and output.status == 200:
            answer = await links.link(answer, str(request.base_url))
        return Response(answer, status_code=output.status, media_type="application/json")

    return await until_disconnected(request, work())


router = APIRouter(tags=["document parsing"])

Body = Annotated[ForwardedBody, Depends(json_body(LayoutParsingRequest))]
RestructureBody = Annotated[ForwardedBody, Depends(json_body(RestructurePagesRequest))]
SettingsDep = Annotated[Settings, Depends(get_settings)]
TritonDep = Annotated[TritonClient, Depends(get_triton)]
PoolsDep = Annotated[dict[str, Pool], Depends(get_pools)]
# Rate-limit headers are declared (optional): they are absent when no limit is configured.
ERRORS = error_responses(400, 401, 413, 422, 429, 500, 502, 503, 504, limited=True)


@router.post(
    "/layout-parsing", response_model=LayoutParsingEnvelope, response_model_exclude_none=True,
    summary="Parse a document (PDF or image) into Markdown and structured blocks",
    responses={200: {"description": "The model's success envelope", "headers": success_headers(limited=True)},
               **ERRORS},
    openapi_extra=body_doc(LayoutParsingRequest, LAYOUT_EXAMPLE))
async def layout_parsing(request: Request, body: Body, settings: SettingsDep, triton: TritonDep,
                         pools: PoolsDep) -> Response:
    """Runs the PaddleOCR-VL pipeline on the file: one `layoutParsingResults` entry per page."""
    return await forward(request, "layout-parsing", pools["inference"], body, settings, triton)


@router.post(
    "/restructure-pages", response_model=RestructurePagesEnvelope, response_model_exclude_none=True,
    summary="Merge tables across pages and relevel titles over a whole document",
    responses={200: {"description": "The model's success envelope", "headers": success_headers(limited=True)},
               **ERRORS},
    openapi_extra=body_doc(RestructurePagesRequest, RESTRUCTURE_EXAMPLE))
async def restructure_pages(request: Request, body: RestructureBody, settings: SettingsDep, triton: TritonDep,
                            pools: PoolsDep) -> Response:
    """Takes the pages of earlier `/layout-parsing` results and restructures them as one document."""
    return await forward(request, "restructure-pages", pools["non-inference"], body, settings, triton)

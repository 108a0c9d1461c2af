"""Where the page is served: `/` (the page), `/ui/config` (what it must know of this gateway), `/ui/assets/`.

None of them needs an API key: the page asks the person for one and sends it with its own API calls. The
config is nothing secret, only whether keys are on and what a job may be. The page's Content-Security-Policy
lets it run only its own scripts, so that text from a document, even if it got past DOMPurify, runs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from jobs.settings import get_job_settings

HERE = Path(__file__).parent
ASSETS = "/ui/assets"

# Images and result lines may come from HPS_JOB_PUBLIC_URL, another origin than the page's.
POLICY = "; ".join([
    "default-src 'self'", "script-src 'self'", "style-src 'self' 'unsafe-inline'",  # KaTeX sets style=""
    "img-src 'self' data: blob: http: https:", "connect-src 'self' http: https:", "font-src 'self'",
    "object-src 'none'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
])
HEADERS = {"Content-Security-Policy": POLICY, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


def is_page(path: str) -> bool:
    """The page's own paths: static and cheap, and a load takes ~17 of them, so no rate limit counts them."""
    return path in ("/", "/ui/config") or path.startswith(f"{ASSETS}/")


@router.get("/")
def page() -> HTMLResponse:
    return HTMLResponse((HERE / "index.html").read_text(encoding="utf-8"), headers=HEADERS)


@router.get("/ui/config")
async def config(request: Request) -> JSONResponse:
    """What the page shows and sends: the served release (a job's `model`), whether it must ask for a key."""
    jobs = get_job_settings()
    body: dict[str, Any] = {
        "model": jobs.pipeline_name, "apiKeyRequired": bool(request.app.state.settings.api_keys),
        "jobApi": jobs.enabled, "maxFileBytes": jobs.max_file_bytes, "maxPages": jobs.max_pages}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(ASSETS, StaticFiles(directory=HERE / "static"), name="webui-assets")

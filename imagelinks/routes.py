"""`GET /images/{answerId}/{name}`: an image of an answer, behind the API key like its request."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from gateway.errors import GatewayError
from imagelinks.service import IMAGES_PATH, ImageLinks

router = APIRouter(tags=["document parsing"])


class ImageNotFound(GatewayError):
    status = 404
    message = "No such image (expired with its answer, or never stored)"


@router.get(IMAGES_PATH + "/{answer}/{name}", summary="An image of an answer (HPS_RETURN_IMG_URLS)",
            response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": ImageNotFound.message}})
async def answer_image(answer: str, name: str, request: Request) -> FileResponse:
    links: ImageLinks | None = getattr(request.app.state, "image_links", None)
    path = links.store.path(answer, name) if links is not None else None
    if path is None:
        raise ImageNotFound()
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

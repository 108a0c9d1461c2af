"""An answer's images replaced by links: each Base64 image of each `layoutParsingResults[]` entry is handed
to `save` under a name of its own within the answer, and the link `save` returns takes its place. The keys
stay PaddleX's (`imgs/...` paths in `markdown.images`, so the Markdown text is unchanged)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from contract.envelope import dumps
from contract.images import decode_image

Save = Callable[[str, bytes], str]   # (file name, JPEG bytes) -> its URL


def link_images(body: bytes, save: Save) -> bytes:
    """The envelope `body` with its images saved and linked; a body without results is returned as it is."""
    envelope = json.loads(body)
    result = envelope.get("result")
    pages = result.get("layoutParsingResults") if isinstance(result, dict) else None
    if not pages:
        return body
    for number, page in enumerate(pages, 1):
        _link_page(page, f"p{number}-", save)
    return dumps(envelope)


def _link_page(page: dict[str, Any], prefix: str, save: Save) -> None:
    def link(name: str, data: str) -> str:
        if data.startswith(("http://", "https://")):   # a link already (pages a client sent back)
            return data
        return save(prefix + name, decode_image(data))

    markdown = page.get("markdown")
    if isinstance(markdown, dict) and markdown.get("images"):
        markdown["images"] = {path: link("md-" + path.rsplit("/", 1)[-1], data)
                              for path, data in markdown["images"].items()}
    if page.get("outputImages"):
        page["outputImages"] = {key: link(f"{key}.jpg", data) for key, data in page["outputImages"].items()}
    if page.get("inputImage"):
        page["inputImage"] = link("input.jpg", page["inputImage"])

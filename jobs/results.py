"""A page's answer from the engine as the job's JSONL line: `{"result": {"layoutParsingResults": [page],
"dataInfo": {...}}}`, its images stored as files and replaced by links.

PaddleOCR's client accepts only http(s) links where `/layout-parsing` gives Base64, and its resource saver
writes each `markdown.images` and `outputImages` entry to a file named by its key, refusing a key with a `/`
and one that another page already used. So in a job the keys are flat and unique within the job: the
Markdown's `imgs/<name>` becomes `page-<n>-<name>` (the Markdown text says so too), and an `outputImages`
key `layout_det_res` becomes `page-<n>-layout_det_res.jpg`. `dataInfo` says which page of the document the
line is (`pageNumber`, counted from 1) and how many pages the job has (`numPages`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from contract.images import decode_image as _image

Store = Callable[[str, bytes], str]   # (file name, JPEG bytes) -> the link to the stored file


def page_line(result: dict[str, Any], *, page_number: int, pages: int, kind: str,
              store: Store) -> dict[str, Any]:
    """The JSONL line of a page from the engine's `result` for it (one page: the page's own file)."""
    page = dict(result["layoutParsingResults"][0])
    prefix = f"page-{page_number}-"
    markdown = dict(page["markdown"])
    if markdown.get("images"):
        text, links = markdown["text"], {}
        for path, data in markdown["images"].items():
            name = prefix + path.rsplit("/", 1)[-1]
            links[name] = store(name, _image(data))
            text = text.replace(path, name)
        markdown.update(text=text, images=links)
    page["markdown"] = markdown
    if page.get("outputImages"):
        page["outputImages"] = {f"{prefix}{key}.jpg": store(f"{prefix}{key}.jpg", _image(data))
                                for key, data in page["outputImages"].items()}
    if page.get("inputImage"):
        page["inputImage"] = store(f"{prefix}input.jpg", _image(page["inputImage"]))
    return {"result": {"layoutParsingResults": [page], "dataInfo": _data_info(result["dataInfo"],
                                                                               page_number, pages, kind)}}


def _data_info(info: dict[str, Any], page_number: int, pages: int, kind: str) -> dict[str, Any]:
    """The document's type and page count, and this page's number and size."""
    size = info["pages"][0] if info.get("pages") else {k: info.get(k) for k in ("width", "height")}
    if kind == "image":
        return {"type": "image", **size}
    return {"type": kind, "numPages": pages, "pageNumber": page_number, "pages": [size]}

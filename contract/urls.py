"""How a VLM server URL is written in settings and used: a base URL without a trailing `/` or `/v1`."""

from __future__ import annotations


def vlm_base_url(url: str) -> str:
    """`http://host:8118/v1/` -> `http://host:8118`; the client appends `/v1/chat/completions` itself."""
    return url.strip().rstrip("/").removesuffix("/v1")


def vlm_base_urls(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated setting (or a list) as base URLs, empty entries left out."""
    parts = value.split(",") if isinstance(value, str) else value
    return tuple(vlm_base_url(part) for part in parts if part.strip())

"""The engine's VLM client: calls to the VLM servers (`calls`), shared fairly by all requests (`dispatch`)."""

from __future__ import annotations

import httpx

from docengine.recognition.calls import VLMCaller
from docengine.recognition.dispatch import FairDispatcher
from docengine.settings import EngineSettings


class VLMClient(FairDispatcher):
    """Fair, bounded, retrying client of one or more OpenAI-compatible VLM servers."""

    def __init__(self, urls: list[str], model: str, *, max_concurrency: int = 200, request_share: float = 1.0,
                 timeout: float = 600, retries: int = 2, failure_cooldown: float = 10, backoff: float = 0.25,
                 http: httpx.AsyncClient | None = None) -> None:
        self.caller = VLMCaller(urls, model, timeout=timeout, retries=retries,
                                failure_cooldown=failure_cooldown, backoff=backoff,
                                max_connections=max_concurrency, http=http)
        super().__init__(self.caller.call, max_concurrency=max_concurrency, request_share=request_share)

    @classmethod
    def from_settings(cls, settings: EngineSettings) -> VLMClient:
        return cls(settings.vlm_urls, settings.served_model_name,
                   max_concurrency=settings.vlm_max_concurrency, request_share=settings.vlm_request_share,
                   timeout=settings.vlm_timeout,
                   retries=settings.vlm_retries, failure_cooldown=settings.vlm_failure_cooldown)

    async def aclose(self) -> None:
        """Fail all pending work (503), then close the connection pool if this client made it."""
        await super().aclose()
        await self.caller.aclose()

"""Settings of the offline recogniser, from the environment (and `.env`), named like the engine's."""

from __future__ import annotations

import os

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contract.names import DEFAULT_PIPELINE, SERVED_MODEL_NAMES, PipelineName


class VLMServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HPS_", env_file=".env", extra="ignore")

    vlm_host: str = "127.0.0.1"
    vlm_port: int = Field(8118, ge=1, le=65535)
    vlm_model_name: str = Field("", description="served model name; empty: the pipeline's default")
    pipeline_name: PipelineName = DEFAULT_PIPELINE
    vlm_workers: int = Field(2, ge=1, description="recognitions running at once (thread pool size)")
    vlm_queue_size: int = Field(64, ge=0, description="requests waiting beyond the workers; more get 503")
    vlm_ort_threads: int = Field(
        0, ge=0, description="ONNX Runtime threads per inference; 0: cores / workers"
    )
    vlm_retry_after: int = Field(1, ge=0, description="seconds a 503 asks the client to wait")
    vlm_max_image_pixels: int = Field(50_000_000, ge=1, description="pixels per request image")

    @property
    def served_model_name(self) -> str:
        return self.vlm_model_name or SERVED_MODEL_NAMES[self.pipeline_name]

    @property
    def ort_threads(self) -> int:
        return self.vlm_ort_threads or max(1, (os.cpu_count() or 1) // self.vlm_workers)

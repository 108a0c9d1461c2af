"""Job API settings, from the environment (and `.env`), `HPS_JOB_*`; read once per process."""

from __future__ import annotations

from functools import lru_cache

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contract.names import DEFAULT_PIPELINE, PipelineName

MIB = 1024 * 1024


class JobSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HPS_JOB_", env_file=".env", extra="ignore", frozen=True)

    enabled: bool = Field(True, description="serve the Job API and work its jobs in this gateway")
    store: str = Field("", description="redis://... for several replicas; empty: SQLite in data_dir")
    data_dir: str = Field("jobs-data", description="the jobs' inputs, results and images (replicas share it)")
    retention: float = Field(86_400.0, gt=0, description="seconds results are kept after a job ends")
    url_secret: str = Field("", repr=False, description="signs result links; empty: made once, kept in store")
    public_url: str = Field("", description="base of result links (https://ocr.example.com); empty: as asked")
    runners: int = Field(1, ge=0, description="jobs each gateway process works on at once")
    page_window: int = Field(8, ge=1, description="pages of a job in Triton at once")
    page_attempts: int = Field(3, ge=1, description="tries of a page when Triton or the VLM is unavailable")
    queue_size: int = Field(64, ge=1, description="jobs waiting to start; past it submit answers 503")
    key_quota: int = Field(8, ge=1, description="jobs one API key (or client) has waiting or running at once")
    max_file_bytes: int = Field(50 * MIB, ge=1, description="size of a submitted file")
    max_pages: int = Field(1000, ge=1, description="pages per job")
    lease: float = Field(15.0, gt=0, description="seconds a runner's claim on a job lasts without renewal")
    poll: float = Field(0.5, gt=0, description="seconds between an idle runner's looks for work")
    url_fetch_timeout: float = Field(30.0, gt=0, description="seconds to fetch a job's fileUrl")
    allow_private_urls: bool = Field(False, description="let fileUrl reach private addresses (tests only)")
    pipeline_name: PipelineName = Field(
        DEFAULT_PIPELINE, validation_alias=AliasChoices("HPS_PIPELINE_NAME"),
        description="the release this deployment serves: the only `model` a job may name")


@lru_cache
def get_job_settings() -> JobSettings:
    return JobSettings()

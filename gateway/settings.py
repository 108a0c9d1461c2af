"""Gateway configuration: one pydantic-settings object, read from the environment and `.env`.

This project's names come first (`HPS_MAX_CONCURRENT_REQUESTS`, `UVICORN_WORKERS`); the newer upstream names
are accepted as aliases, so either deployment's `.env` works. When both are set, this project's name wins.
Concurrency and queue figures are totals for the whole gateway, whichever worker counts them.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from limits import parse_many
from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from contract.urls import vlm_base_urls

MIB = 1024 * 1024
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _env(*names: str) -> Any:
    return AliasChoices(*names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True, populate_by_name=True)

    # Concurrency (totals over all workers) and the queue in front of it.
    max_concurrent_requests: int = Field(
        default=16, ge=1,
        validation_alias=_env("HPS_MAX_CONCURRENT_REQUESTS", "HPS_MAX_CONCURRENT_INFERENCE_REQUESTS"),
        description="/layout-parsing requests in Triton at once")
    max_concurrent_non_inference_requests: int = Field(
        default=64, ge=1, validation_alias=_env("HPS_MAX_CONCURRENT_NON_INFERENCE_REQUESTS"),
        description="/restructure-pages requests in Triton at once")
    max_queued_requests: int = Field(
        default=64, ge=0, validation_alias=_env("HPS_MAX_QUEUED_REQUESTS"),
        description="requests waiting for a slot, per route; past it: 503")
    max_queue_wait: float = Field(
        default=30.0, ge=0, validation_alias=_env("HPS_MAX_QUEUE_WAIT"),
        description="seconds a request may wait for a slot; past it: 503")

    # Time limits.
    inference_timeout: float = Field(
        default=600.0, gt=0, validation_alias=_env("HPS_INFERENCE_TIMEOUT"),
        description="seconds for a whole request, queue included; past it: 504, Triton call cancelled")
    health_check_timeout: float = Field(default=5.0, gt=0, validation_alias=_env("HPS_HEALTH_CHECK_TIMEOUT"))
    drain_timeout: float = Field(
        default=30.0, ge=0, validation_alias=_env("HPS_DRAIN_TIMEOUT"),
        description="seconds in-flight requests may take to finish after SIGTERM")

    # Process.
    workers: int = Field(default=4, ge=1, validation_alias=_env("UVICORN_WORKERS", "HPS_UVICORN_WORKERS"))
    loop: Literal["auto", "asyncio", "uvloop"] = Field(
        default="auto", validation_alias=_env("HPS_GATEWAY_LOOP"),
        description="uvicorn's event loop: auto takes uvloop when installed")
    worker_max_requests: int = Field(
        default=0, ge=0, validation_alias=_env("HPS_WORKER_MAX_REQUESTS"),
        description="a worker restarts gracefully after this many requests (plus up to 10%); 0: never")
    worker_max_memory_mb: int = Field(
        default=0, ge=0, validation_alias=_env("HPS_WORKER_MAX_MEMORY_MB"),
        description="a worker restarts gracefully past this RSS in MiB; 0: never")
    host: str = Field(default="127.0.0.1", validation_alias=_env("HPS_GATEWAY_HOST"))
    port: int = Field(default=8080, ge=1, le=65535, validation_alias=_env("HPS_GATEWAY_PORT"))
    log_level: str = Field(default="INFO", validation_alias=_env("HPS_LOG_LEVEL"))
    filter_health_access_log: bool = Field(
        default=True, validation_alias=_env("HPS_FILTER_HEALTH_ACCESS_LOG"),
        description="leave answered /health and /health/ready probes out of the access log")
    run_dir: str = Field(default="", validation_alias=_env("HPS_GATEWAY_RUN_DIR"),
                         description="directory the workers share; `python -m gateway` sets it")

    # Tiers behind the gateway.
    triton_url: str = Field(
        default="127.0.0.1:8001", validation_alias=_env("HPS_TRITON_URL"),
        description="Triton gRPC address(es) host:port, comma-separated; the gateway balances them")
    vlm_urls: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("http://127.0.0.1:8118",), validation_alias=_env("HPS_VLM_URL"),
        description="VLM server base URL(s), comma-separated; readiness asks each for /health")

    # Answers.
    return_img_urls: bool = Field(
        default=False, validation_alias=_env("HPS_RETURN_IMG_URLS"),
        description="answer images as URLs the gateway serves (kept HPS_JOB_RETENTION), not Base64")

    # Protection.
    max_body_size: int = Field(
        default=72 * MIB, ge=1, validation_alias=_env("HPS_MAX_BODY_SIZE"),
        description="bytes; the default fits a 50 MiB document in Base64 (~67 MiB) plus the other fields")
    rate_limit: str = Field(default="", validation_alias=_env("HPS_RATE_LIMIT"),
                            description="per client, e.g. `120/minute` or `10/second;500/hour`; empty: off")
    rate_limit_storage: str = Field(
        default="", validation_alias=_env("HPS_RATE_LIMIT_STORAGE"),
        description="`limits` storage URI for all replicas (e.g. redis://...); empty: this host's workers")
    api_keys: Annotated[frozenset[str], NoDecode] = Field(
        default=frozenset(), validation_alias=_env("HPS_API_KEYS"), repr=False,
        description="comma-separated; empty: off")
    api_keys_file: str = Field(
        default="", validation_alias=_env("HPS_API_KEYS_FILE"),
        description="a file of API keys (one a line or comma-separated, `#` comments), e.g. a mounted "
                    "Secret; added to HPS_API_KEYS")
    trusted_proxies: Annotated[tuple[IPNetwork, ...], NoDecode] = Field(
        default=(), validation_alias=_env("HPS_TRUSTED_PROXIES"),
        description="addresses/networks whose X-Forwarded-For is believed, comma-separated")
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), validation_alias=_env("HPS_CORS_ORIGINS"),
        description="comma-separated, `*` for any; empty: off")

    @field_validator("vlm_urls", "cors_origins", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("vlm_urls")
    @classmethod
    def _base_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        urls = vlm_base_urls(value)
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return urls

    @field_validator("triton_url")
    @classmethod
    def _triton_urls(cls, value: str) -> str:
        urls = [part.strip() for part in value.split(",") if part.strip()]
        if not urls:
            raise ValueError("expected host:port, or several comma-separated")
        for url in urls:
            host, _, port = url.rpartition(":")
            if not host or not port.isdigit() or "/" in url:
                raise ValueError(f"{url!r} is not host:port")
        return ",".join(urls)

    @property
    def triton_urls(self) -> tuple[str, ...]:
        return tuple(self.triton_url.split(","))

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _read_key_file(self) -> Settings:
        """Keys from HPS_API_KEYS_FILE join HPS_API_KEYS. A file that cannot be read or holds no key stops the
        start: a Secret mounted empty must not turn authentication off."""
        if not self.api_keys_file:
            return self
        try:
            text = Path(self.api_keys_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"HPS_API_KEYS_FILE={self.api_keys_file!r} cannot be read: {exc}") from None
        keys = {key.strip() for line in text.splitlines() for key in line.split("#", 1)[0].split(",")}
        keys.discard("")
        if not keys:
            raise ValueError(f"HPS_API_KEYS_FILE={self.api_keys_file!r} holds no key")
        object.__setattr__(self, "api_keys", self.api_keys | keys)  # the model is frozen once built
        return self

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return tuple(ipaddress.ip_network(v, strict=False) for v in value)

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.strip().upper()
        if not isinstance(logging.getLevelName(level), int):
            raise ValueError("expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level

    @field_validator("rate_limit")
    @classmethod
    def _limits(cls, value: str) -> str:
        value = value.strip()
        if value:
            try:
                parse_many(value)
            except ValueError:
                raise ValueError("expected e.g. `120/minute` or `10/second;500/hour`") from None
        return value


class SettingsError(Exception):
    """A bad setting, as one line that names the variable (start-up stops on it)."""


def _env_name(loc: str) -> str:
    """The variable the user set for the field reported at `loc` (a field name or one of its aliases)."""
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        names = [str(c) for c in alias.choices] if isinstance(alias, AliasChoices) else []
        if loc == name or loc in names:
            return next((n for n in names if n in os.environ), names[0] if names else loc)
    return loc


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            if not err["loc"]:   # a check of several fields names its variables itself
                problems.append(str(err["msg"]).removeprefix("Value error, "))
                continue
            name = _env_name(str(err["loc"][0]))
            value = err.get("input")
            shown = f"={value!r}" if isinstance(value, str | int | float) else ""
            problems.append(f"{name}{shown}: {err['msg']}")
        raise SettingsError("invalid setting " + "; ".join(problems)) from None


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once."""
    return load_settings()

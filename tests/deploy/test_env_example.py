"""`.env.example` lists every variable of every tier, and nothing that no tier reads."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from docengine.settings import EngineSettings
from gateway.settings import Settings as GatewaySettings
from jobs.settings import JobSettings
from vlm_server.settings import VLMServerSettings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / ".env.example").read_text()
# Files that read variables by name (shell, compose, Dockerfiles, the launchers), not via pydantic-settings.
NAMED_IN = ["compose.yaml", "prepare.sh", "triton_repo/entrypoint.sh", "triton_repo/Dockerfile",
            "triton_repo/configure.py", "vlm_server/entrypoint.sh", "vlm_server/Dockerfile",
            "vlm_server/Dockerfile.cpu", "gateway/Dockerfile", "localstack/tiers.py",
            "localstack/__main__.py"]
VARIABLE = re.compile(r"\b(?:(?:HPS|VLM|HF)_[A-Z0-9_]*[A-Z0-9]|GPU_DEVICE_ID)\b")
INTERNAL = {"HF_HOME"}  # fixed inside the images, not a user setting
NAMED_ALIASES = {"HPS_DEVICE_ID"}  # read beside GPU_DEVICE_ID by compose.yaml and configure.py


def listed() -> set[str]:
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", EXAMPLE, flags=re.M))


def settings_names(settings: type[BaseSettings]) -> tuple[set[str], set[str]]:
    """(primary names, alias names) of a settings class."""
    prefix = settings.model_config.get("env_prefix", "")
    primary, aliases = set(), set()
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names = [str(c) for c in alias.choices]
            primary.add(names[0])
            aliases.update(names[1:])
        else:
            primary.add(f"{prefix}{name}".upper())
    return primary, aliases


def in_code() -> tuple[set[str], set[str]]:
    primary, aliases = set(), set()
    for settings in (GatewaySettings, JobSettings, EngineSettings, VLMServerSettings):
        p, a = settings_names(settings)
        primary |= p
        aliases |= a
    for path in NAMED_IN:
        primary |= set(VARIABLE.findall((ROOT / path).read_text()))
    aliases |= NAMED_ALIASES
    return primary - INTERNAL - aliases, aliases


def test_every_variable_in_code_is_listed():
    primary, _ = in_code()
    assert sorted(primary - listed()) == []


def test_every_listed_variable_is_read_somewhere():
    primary, _ = in_code()
    assert sorted(listed() - primary) == []


def test_aliases_are_named_beside_their_primary_variable():
    _, aliases = in_code()
    assert aliases, "the gateway accepts the upstream names as aliases"
    for alias in aliases:
        assert f"alias: {alias}" in EXAMPLE or f"aliases: {alias}" in EXAMPLE, alias
    assert not aliases & listed()


def test_listed_defaults_match_the_code():
    defaults = dict(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=(.*)$", EXAMPLE, flags=re.M))
    engine = EngineSettings(_env_file=None)
    for name in EngineSettings.model_fields:
        value = getattr(engine, name)
        shown = defaults[f"HPS_{name.upper()}"]
        expected = str(value).lower() if isinstance(value, bool) else str(value)
        assert shown in (expected, expected.removesuffix(".0")), (name, shown, expected)


def test_listed_job_defaults_match_the_code():
    defaults = dict(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=(.*)$", EXAMPLE, flags=re.M))
    jobs = JobSettings(_env_file=None)
    for name in JobSettings.model_fields.keys() - {"pipeline_name"}:
        value = getattr(jobs, name)
        expected = str(value).lower() if isinstance(value, bool) else str(value)
        assert defaults[f"HPS_JOB_{name.upper()}"] in (expected, expected.removesuffix(".0")), name

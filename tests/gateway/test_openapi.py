"""The OpenAPI document tells the whole truth: request models, every status with its headers; and a bounded
schemathesis run finds no server error and no undocumented answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from devkit.servers import run_schemathesis

from .conftest import Gateway

STATUSES = {"200", "400", "401", "413", "422", "429", "500", "502", "503", "504"}


@pytest.fixture(scope="module")
def gateway(start_gateway: Any, vlm: Any) -> Gateway:
    return start_gateway(HPS_VLM_URL=vlm.url, HPS_INFERENCE_TIMEOUT="10")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def document(gateway: Gateway) -> dict[str, Any]:
    return httpx.get(f"{gateway.url}/openapi.json").json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("path,model", [("/layout-parsing", "LayoutParsingRequest"),
                                        ("/restructure-pages", "RestructurePagesRequest")])
def test_post_routes_declare_their_body_and_every_answer(document: dict[str, Any], path: str,
                                                         model: str) -> None:
    operation = document["paths"][path]["post"]
    body = operation["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{model}"}
    assert body["content"]["application/json"]["example"]
    assert set(operation["responses"]) == STATUSES
    for status, answer in operation["responses"].items():
        assert answer["headers"]["X-Request-Id"]["required"] is True
        assert "RateLimit-Remaining" in answer["headers"]
        if status in ("429", "503"):
            assert "Retry-After" in answer["headers"]
        if status != "200":
            schema = answer["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}


def test_request_models_are_camel_case_with_descriptions_and_ranges(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    layout = schemas["LayoutParsingRequest"]
    assert layout["required"] == ["file"]
    assert layout["properties"]["topP"]["anyOf"][0]["exclusiveMinimum"] == 0
    assert all("description" in field for field in layout["properties"].values())
    assert layout["examples"]
    restructure = schemas["RestructurePagesRequest"]
    assert restructure["properties"]["pages"]["items"] == {"$ref": "#/components/schemas/PageInput"}
    assert restructure["properties"]["pages"]["minItems"] == 1
    assert "PageInput" in schemas


def test_probes_and_metrics_are_documented(document: dict[str, Any]) -> None:
    assert set(document["paths"]["/health/ready"]["get"]["responses"]) == {"200", "500", "503"}
    assert "text/plain" in document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]


def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(gateway: Gateway,
                                                                       tmp_path: Path) -> None:
    run = run_schemathesis(gateway.url, tmp_path, max_examples=40, seed=7, request_timeout=15)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    # Both routes were exercised, with valid and invalid bodies alike, and answered only as documented.
    for route in ("/layout-parsing", "/restructure-pages"):
        answered = {code: gateway.metric("gateway_requests_total", route=route, method="POST", status=code)
                    for code in STATUSES}
        assert answered["200"] >= 20 and answered["422"] >= 20, answered
        assert sum(answered.values()) == gateway.metric("gateway_requests_total", route=route, method="POST")


def test_job_routes_declare_both_bodies_and_their_failures(document: dict[str, Any]) -> None:
    submit = document["paths"]["/api/v2/ocr/jobs"]["post"]
    content = submit["requestBody"]["content"]
    assert content["application/json"]["schema"]["required"] == ["fileUrl", "model"]
    assert content["multipart/form-data"]["schema"]["properties"]["file"]["format"] == "binary"
    assert set(submit["responses"]) == {"200", "400", "401", "429", "503"}
    assert set(document["paths"]["/api/v2/ocr/jobs/{job_id}"]["delete"]["responses"]) == {"200", "401", "404"}
    failure = submit["responses"]["429"]["content"]["application/json"]["schema"]
    assert document["components"]["schemas"][failure["$ref"].rsplit("/", 1)[1]]["required"] == [
        "code", "msg", "logId"]

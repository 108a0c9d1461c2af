"""Bad input against the real stack: each gets its 4xx envelope with a message that says what is wrong, never
a 5xx; the stack stays ready, and neither the gateway's nor Triton's memory jumps while it refuses.

The stack runs with a page limit of 3 and a body limit of 1 MiB, so that those limits are cheap to reach.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from contract.models import LayoutParsingRequest, RestructurePagesRequest
from devkit.documents import b64, encode_image, render_page, sample_pdf
from devkit.servers import run_schemathesis
from devkit.stack import Stack, running_stack
from tests.e2e import docs

pytestmark = pytest.mark.slow

MAX_PAGES = 3
MAX_BODY = 1024 * 1024
MIB = 1024 * 1024
# How far resident memory may rise above its warmed-up level while a bad request is refused. Decoding the
# 30000 x 30000 PNG below would take over 2.5 GiB, the 12000 x 12000 one over 400 MiB.
RSS_HEADROOM = {"gateway": 100 * MIB, "triton": 250 * MIB}

SMALL_PDF = sample_pdf(1, with_table=False)[0]
SMALL_PNG = encode_image(render_page(SMALL_PDF, 0, dpi=40))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("bad-input"), recogniser="synthetic", workers=1,
                       engine_env={"HPS_MAX_PAGES": str(MAX_PAGES)},
                       gateway_env={"HPS_MAX_BODY_SIZE": str(MAX_BODY)}) as running:
        yield running


def server_errors(stack: Stack) -> float:
    """5xx answers the gateway has counted so far (one scrape of its metrics)."""
    lines = httpx.get(f"{stack.url}/metrics", timeout=10).text.splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines
               if line.startswith("gateway_requests_total{") and 'status="5' in line)


@pytest.fixture(autouse=True)
def no_server_error(stack: Stack) -> Iterator[None]:
    """Every test here, whatever it sends, gets no 5xx (the gateway's own count, before and after it)."""
    before = server_errors(stack)
    yield
    assert server_errors(stack) == before, "a request of this test was answered with a 5xx"


@pytest.fixture(scope="module")
def baseline(stack: Stack) -> dict[str, int]:
    """Resident memory once a good request has warmed every tier up."""
    resp = httpx.post(f"{stack.url}/layout-parsing", json={"file": b64(SMALL_PNG), "fileType": 1}, timeout=60)
    assert resp.status_code == 200, resp.text
    return {tier: stack.rss(tier) for tier in RSS_HEADROOM}


@contextmanager
def peak_rss(stack: Stack) -> Iterator[dict[str, int]]:
    """The highest resident memory of the gateway and Triton seen while the block runs (sampled)."""
    peaks = {tier: stack.rss(tier) for tier in RSS_HEADROOM}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            for tier in peaks:
                peaks[tier] = max(peaks[tier], stack.rss(tier))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peaks
    finally:
        done.set()
        sampler.join()


def refused(stack: Stack, baseline: dict[str, int], status: int, *fragments: str,
            route: str = "/layout-parsing", **request: Any) -> str:
    """POST, expect the envelope of `status` whose message holds every fragment; the stack stays ready and
    its memory stays near the baseline. Returns the message."""
    request.setdefault("timeout", 60)
    with peak_rss(stack) as peaks:
        resp = httpx.post(f"{stack.url}{route}", **request)
    envelope = resp.json()
    assert resp.status_code == status, envelope
    assert set(envelope) == {"logId", "errorCode", "errorMsg"} and envelope["errorCode"] == status
    assert envelope["logId"] == resp.headers["x-request-id"]
    for fragment in fragments:
        assert fragment in envelope["errorMsg"], (fragment, envelope["errorMsg"])
    assert stack.ready().status_code == 200
    for tier, peak in peaks.items():
        assert peak - baseline[tier] < RSS_HEADROOM[tier], (tier, peak - baseline[tier])
    return str(envelope["errorMsg"])


BAD_FILES = {
    "invalid Base64": ({"file": "%%% not base64 %%%", "fileType": 0}, ["valid Base64"]),
    "empty file": ({"file": "", "fileType": 0}, ["file is empty"]),
    "data: URL": ({"file": "data:application/pdf;base64," + b64(SMALL_PDF)}, ["data: prefix"]),
    "truncated PDF": ({"file": b64(SMALL_PDF[: len(SMALL_PDF) // 2]), "fileType": 0},
                      ["corrupt or truncated"]),
    "encrypted PDF": ({"file": b64(docs.encrypted_pdf(SMALL_PDF)), "fileType": 0}, ["encrypted", "password"]),
    "too many pages": ({"file": b64(sample_pdf(MAX_PAGES + 1, with_table=False)[0]), "fileType": 0},
                       [f"{MAX_PAGES + 1} pages", f"limit of {MAX_PAGES} pages"]),
    "30000 x 30000 PNG": ({"file": b64(docs.png_header_only(30000, 30000)), "fileType": 1},
                          ["900000000 pixels"]),
    "12000 x 12000 PNG": ({"file": b64(docs.png_header_only(12000, 12000)), "fileType": 1},
                          ["12000 x 12000", "decompression bomb"]),
    "zero-size PNG": ({"file": b64(docs.png_header_only(0, 0)), "fileType": 1}, ["zero width or height"]),
    "zero-width PNG": ({"file": b64(docs.png_header_only(0, 50)), "fileType": 1}, ["zero width or height"]),
    "PDF sent as image": ({"file": b64(SMALL_PDF), "fileType": 1}, ["fileType is 1 (image)", "is a PDF"]),
    "image sent as PDF": ({"file": b64(SMALL_PNG), "fileType": 0}, ["fileType is 0 (PDF)", "PNG image"]),
    "unknown file type": ({"file": b64(b"just some text")}, ["file type cannot be determined"]),
    "fileType 2": ({"file": b64(SMALL_PDF), "fileType": 2}, ['"loc": "fileType"']),
    "no file": ({"fileType": 0}, ['"loc": "file"', "required"]),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_file_gets_a_422_that_says_what_is_wrong(stack: Stack, baseline: dict[str, int],
                                                      case: str) -> None:
    body, fragments = BAD_FILES[case]
    refused(stack, baseline, 422, *fragments, json=body)


def test_bodies_that_are_not_json_objects_are_refused_before_triton(stack: Stack,
                                                                    baseline: dict[str, int]) -> None:
    json_type = {"content-type": "application/json"}
    refused(stack, baseline, 400, "not valid JSON", content=b'{"file": ', headers=json_type)
    refused(stack, baseline, 400, "NaN", content=b'{"file": "x", "temperature": NaN}', headers=json_type)
    refused(stack, baseline, 400, "not valid JSON", content=b'{"file": "\xff"}', headers=json_type)
    refused(stack, baseline, 422, "declared as 'text/plain'", content=b'{"file": "x"}',
            headers={"content-type": "text/plain"})
    refused(stack, baseline, 422, "Content-Type", data={"file": b64(SMALL_PNG)})  # an HTML form
    refused(stack, baseline, 422, "valid dictionary", json=[{"file": b64(SMALL_PNG)}])
    refused(stack, baseline, 422, "pages", route="/restructure-pages", content=b"{}")  # no Content-Type: JSON


def test_a_body_over_the_limit_is_refused_whether_declared_or_streamed(stack: Stack,
                                                                       baseline: dict[str, int]) -> None:
    big = {"file": "A" * (MAX_BODY + 1), "fileType": 0}
    refused(stack, baseline, 413, f"larger than {MAX_BODY} bytes", json=big)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the gateway has to count
        yield b'{"file": "'
        for _ in range(3):
            yield b"A" * (MAX_BODY // 2)
        yield b'"}'

    refused(stack, baseline, 413, f"larger than {MAX_BODY} bytes", content=chunks(),
            headers={"content-type": "application/json"})
    pages = [{"prunedResult": {"parsing_res_list": [], "pad": "x" * MAX_BODY}}]
    refused(stack, baseline, 413, "larger than", route="/restructure-pages", json={"pages": pages})


# --- every constrained field, from the request models themselves -----------------------------------------


def _bad_values(schema: dict[str, Any]) -> list[Any]:
    """Values that break one alternative of a field's JSON schema and fit none of the others."""
    options = [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
    types = {s.get("type") for s in options}
    bad: list[Any] = []
    for s in options:
        if "enum" in s:
            bad.append(7 if s.get("type") == "string" else 2)
            if s.get("type") == "string" and "object" not in types:
                bad.append("bogus")
        if s.get("type") == "array" and {"const", "enum"} & set(s.get("items", {})):
            bad.append(["not-one-of-them"])
        if s.get("type") in ("number", "integer"):
            if "exclusiveMinimum" in s:
                bad += [s["exclusiveMinimum"], s["exclusiveMinimum"] - 1]
            if "minimum" in s:
                bad.append(s["minimum"] - 0.5)
            if "maximum" in s:
                bad.append(s["maximum"] + 0.5)
            if s["type"] == "integer":
                bad.append(1.5)
        if s.get("type") == "boolean":
            bad.append("sometimes")
        if s.get("type") == "string" and "enum" not in s:
            bad.append(["not", "a", "string"])
        if s.get("type") == "array" and "prefixItems" in s:
            bad.append([1.0] * (len(s["prefixItems"]) + 1))
        if s.get("type") == "array" and s.get("minItems"):
            bad.append([])
        if s.get("type") == "array" and s.get("items", {}).get("type") == "string":
            bad.append([1, 2])
        if s.get("type") == "object" and isinstance(s.get("additionalProperties"), dict):
            bad.append({"22": ["not", "valid"]})  # a well-formed class id with a value of no allowed kind
    if not types & {"string", "object"}:
        bad.append({"nested": "object"})
    if not types & {"string", "number", "boolean"}:
        bad.append("text")
    return bad


def _field_cases(model: type, base: dict[str, Any]) -> list[tuple[str, Any]]:
    schema = model.model_json_schema(by_alias=True)  # type: ignore[attr-defined]
    return [(name, value) for name, prop in schema["properties"].items() if name not in ("file", "pages")
            for value in _bad_values(prop)]


LAYOUT_BASE = {"file": b64(SMALL_PNG), "fileType": 1}
RESTRUCTURE_BASE = {"pages": [{"prunedResult": {"parsing_res_list": []}}]}
FIELD_CASES = ([("/layout-parsing", LAYOUT_BASE, name, value)
                for name, value in _field_cases(LayoutParsingRequest, LAYOUT_BASE)]
               + [("/restructure-pages", RESTRUCTURE_BASE, name, value)
                  for name, value in _field_cases(RestructurePagesRequest, RESTRUCTURE_BASE)]
               + [("/restructure-pages", {}, "pages", value)
                  for value in ([], [{}], "pages", [{"prunedResult": 1}])])


def test_the_field_table_covers_every_constrained_field() -> None:
    """So that a field added to the models with a range is tested by the table below without editing it."""
    named = {(route, name) for route, _, name, _ in FIELD_CASES}
    models = {"/layout-parsing": LayoutParsingRequest, "/restructure-pages": RestructurePagesRequest}
    for route, model in models.items():
        for name, prop in model.model_json_schema(by_alias=True)["properties"].items():
            if name == "file":  # tested by BAD_FILES
                continue
            assert (route, name) in named, f"{route} {name}: {prop}"


@pytest.mark.parametrize("route,base,name,value", FIELD_CASES,
                         ids=[f"{r}:{n}={v!r}"[:80] for r, _, n, v in FIELD_CASES])
def test_a_field_out_of_range_gets_a_422_naming_it(stack: Stack, baseline: dict[str, int], route: str,
                                                   base: dict[str, Any], name: str, value: Any) -> None:
    refused(stack, baseline, 422, f'"loc": "{name}', route=route, json={**base, name: value})


RANGE_RULES = [  # the models' cross-field rules, which a JSON schema cannot state
    ({"layoutThreshold": 1.5}, "layoutThreshold values must lie in [0, 1]"),
    ({"layoutThreshold": {"22": -0.1}}, "layoutThreshold values must lie in [0, 1]"),
    ({"layoutThreshold": {"text": 0.5}}, "keyed by class id"),
    ({"layoutUnclipRatio": 0}, "layoutUnclipRatio values must be greater than 0"),
    ({"layoutUnclipRatio": [1.0, -1.0]}, "layoutUnclipRatio values must be greater than 0"),
    ({"layoutUnclipRatio": {"22": [1.0, 0]}}, "layoutUnclipRatio values must be greater than 0"),
    ({"layoutMergeBboxesMode": {"table": "large"}}, "keyed by class id"),
    ({"minPixels": 2_000_000, "maxPixels": 1_000_000}, "minPixels must not be greater than maxPixels"),
]


@pytest.mark.parametrize("fields,message", RANGE_RULES, ids=[str(f) for f, _ in RANGE_RULES])
def test_cross_field_rules_get_a_422_that_says_which(stack: Stack, baseline: dict[str, int],
                                                     fields: dict[str, Any], message: str) -> None:
    refused(stack, baseline, 422, message, json={**LAYOUT_BASE, **fields})


def test_what_the_gateway_lets_through_the_engine_refuses_with_422(stack: Stack,
                                                                   baseline: dict[str, int]) -> None:
    refused(stack, baseline, 422, "useDocUnwarping is not available on this server (cpu profile)",
            "HPS_DOC_UNWARPING_MODEL_DIR", json={**LAYOUT_BASE, "useDocUnwarping": True})
    refused(stack, baseline, 422, "outputFormats", json={**LAYOUT_BASE, "outputFormats": ["pdf"]})
    block = {"block_label": "table", "block_bbox": [0, 0, "a", 1]}
    broken = [{"prunedResult": {"parsing_res_list": [block]}}]
    refused(stack, baseline, 422, "parsing_res_list[0] is malformed", route="/restructure-pages",
            json={"pages": broken})
    refused(stack, baseline, 422, "has no parsing_res_list", route="/restructure-pages",
            json={"pages": [{"prunedResult": {"width": 10}}]})


# --- URLs ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def decoy() -> Iterator[dict[str, Any]]:
    """A loopback server with a valid PNG behind every path: a fetch of it would succeed, so a 422 can only
    come from the address check. Counts the requests it gets."""
    state: dict[str, Any] = {"hits": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            state["hits"] += 1
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(SMALL_PNG)))
            self.end_headers()
            self.wfile.write(SMALL_PNG)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["port"] = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state
    server.shutdown()
    server.server_close()


PRIVATE_URLS = [
    "http://127.0.0.1:{port}/page.png", "http://localhost:{port}/page.png", "http://2130706433:{port}/page.png",
    "http://0.0.0.0:{port}/page.png", "http://[::1]:{port}/page.png", "http://[::ffff:127.0.0.1]:{port}/page.png",
    "http://10.0.0.1/page.png", "http://172.16.5.4/page.png", "http://192.168.1.1/page.png",
    "http://169.254.169.254/latest/meta-data/", "http://100.64.0.1/page.png", "https://127.0.0.1:{port}/page.png",
]


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_a_url_to_a_loopback_or_private_address_is_refused_unfetched(stack: Stack, baseline: dict[str, int],
                                                                   decoy: dict[str, Any], url: str) -> None:
    url = url.format(port=decoy["port"])
    refused(stack, baseline, 422, "non-public address", json={"file": url, "fileType": 1})
    refused(stack, baseline, 422, "non-public address", json={"file": url})  # type from the extension
    assert decoy["hits"] == 0


def test_urls_of_other_schemes_are_refused(stack: Stack, baseline: dict[str, int]) -> None:
    for url, scheme in (("file:///etc/passwd", "file:"), ("ftp://127.0.0.1/x.pdf", "ftp:")):
        refused(stack, baseline, 422, "http(s) URL", scheme, json={"file": url, "fileType": 0})


# --- property-based, over the published API ----------------------------------------------------------------


def test_schemathesis_finds_no_server_error_and_no_undocumented_status(stack: Stack, tmp_path: Path) -> None:
    """A bounded run over the gateway's own OpenAPI document, against the real tiers (the gateway's tests run
    a larger one against stand-in Triton models)."""
    started = time.monotonic()
    run = run_schemathesis(stack.url, tmp_path, max_examples=15, seed=11, request_timeout=30)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert time.monotonic() - started < 120
    for route in ("/layout-parsing", "/restructure-pages"):
        assert stack.metric("gateway_requests_total", route=route, method="POST", status="422") >= 20
    merged = stack.metric("gateway_requests_total", route="/restructure-pages", method="POST", status="200")
    assert merged >= 5
    assert stack.ready().status_code == 200


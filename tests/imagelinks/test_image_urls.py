"""Images by URL on the real stack (`HPS_RETURN_IMG_URLS`, API keys on): a visualised answer carries links,
not Base64; the links need the key, cannot leave the store, and expire with the retention."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from devkit.documents import b64, picture_pdf
from devkit.stack import Stack, eventually, running_stack

pytestmark = pytest.mark.slow

KEY = "image-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
RETENTION = 8


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {"HPS_API_KEYS": KEY, "HPS_RETURN_IMG_URLS": "true", "HPS_JOB_RETENTION": str(RETENTION),
           "HPS_JOB_DATA_DIR": str(tmp_path_factory.mktemp("data"))}
    with running_stack(tmp_path_factory.mktemp("images"), recogniser="synthetic", workers=2,
                       gateway_env=env) as running:
        yield running


def parse(stack: Stack, **fields: object) -> dict[str, object]:
    body = {"file": b64(picture_pdf(2)), "fileType": 0, "visualize": True, **fields}
    response = httpx.post(f"{stack.url}/layout-parsing", json=body, headers=AUTH, timeout=120)
    assert response.status_code == 200, response.text
    return dict(response.json()["result"])


def image_links(result: dict[str, object]) -> list[str]:
    links = []
    for page in result["layoutParsingResults"]:  # type: ignore[attr-defined]
        links += [*page["markdown"]["images"].values(), *page["outputImages"].values(), page["inputImage"]]
    return links


def test_a_visualised_answer_carries_links_that_serve_its_jpegs_with_the_key(stack: Stack) -> None:
    result = parse(stack)
    links = image_links(result)
    pages = result["layoutParsingResults"]
    assert len(pages) == 2
    for page in pages:  # type: ignore[attr-defined]
        assert page["markdown"]["images"] and page["outputImages"]["layout_det_res"] and page["inputImage"]
    assert links and all(link.startswith(f"{stack.url}/images/") for link in links), links
    for link in links:
        answer = httpx.get(link, headers=AUTH, timeout=30)
        assert answer.status_code == 200 and answer.content[:2] == b"\xff\xd8", link
        assert httpx.get(link, timeout=30).status_code == 401
        assert httpx.get(link, headers={"Authorization": "Bearer wrong"}, timeout=30).status_code == 401


def test_a_path_cannot_leave_the_store(stack: Stack) -> None:
    link = image_links(parse(stack, useLayoutDetection=False))[0]
    answer = link.rsplit("/", 2)[-2]
    for path in [f"/images/{answer}/..%2F..%2Fjobs%2Fjobs.sqlite", f"/images/{answer}/%2E%2E",
                 f"/images/{answer}/..", "/images/..%2F..%2F/jobs.sqlite",
                 f"/images/{answer[:-1]}x/p1-input.jpg", f"/images/{answer}/p9-input.jpg"]:
        response = httpx.get(stack.url + path, headers=AUTH, timeout=30)
        assert response.status_code == 404, (path, response.status_code)


def test_images_expire_with_the_retention(stack: Stack) -> None:
    links = image_links(parse(stack))
    assert httpx.get(links[0], headers=AUTH, timeout=30).status_code == 200
    gone = eventually(lambda: all(httpx.get(link, headers=AUTH, timeout=30).status_code == 404
                                  for link in links), RETENTION * 4)
    assert gone


def test_restructuring_linked_pages_keeps_their_links(stack: Stack) -> None:
    pages = parse(stack)["layoutParsingResults"]
    body = {"pages": [{"prunedResult": p["prunedResult"], "markdownImages": p["markdown"]["images"]}  # type: ignore
                      for p in pages], "concatenatePages": True}  # type: ignore[attr-defined]
    response = httpx.post(f"{stack.url}/restructure-pages", json=body, headers=AUTH, timeout=60)
    assert response.status_code == 200, response.text
    [merged] = response.json()["result"]["layoutParsingResults"]
    sent = {link for p in pages for link in p["markdown"]["images"].values()}  # type: ignore[attr-defined]
    assert sent and set(merged["markdown"]["images"].values()) == sent

"""The parts of images by URL: an answer's images swapped for links, and the store that keeps them."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import pytest

from imagelinks.rewrite import link_images
from imagelinks.store import AnswerImages

JPEG = b"\xff\xd8\xff\xe0 not really a jpeg"
B64 = base64.b64encode(JPEG).decode()


def envelope(*pages: dict[str, object]) -> bytes:
    return json.dumps({"logId": "x", "errorCode": 0, "errorMsg": "Success",
                       "result": {"layoutParsingResults": list(pages), "dataInfo": {"type": "pdf"}}}).encode()


def page(**images: object) -> dict[str, object]:
    return {"prunedResult": {"parsing_res_list": []},
            "markdown": {"text": '<img src="imgs/a.jpg">', "images": {"imgs/a.jpg": B64}}, **images}


def test_every_image_of_every_page_becomes_a_link_under_its_own_name() -> None:
    saved: dict[str, bytes] = {}

    def save(name: str, data: bytes) -> str:
        saved[name] = data
        return f"https://h/images/1/{name}"

    body = envelope(page(outputImages={"layout_det_res": B64}, inputImage=B64), page())
    answer = json.loads(link_images(body, save))
    first, second = answer["result"]["layoutParsingResults"]
    assert first["markdown"] == {"text": '<img src="imgs/a.jpg">',   # PaddleX's keys; the text as it was
                                 "images": {"imgs/a.jpg": "https://h/images/1/p1-md-a.jpg"}}
    assert first["outputImages"] == {"layout_det_res": "https://h/images/1/p1-layout_det_res.jpg"}
    assert first["inputImage"] == "https://h/images/1/p1-input.jpg"
    assert second["markdown"]["images"] == {"imgs/a.jpg": "https://h/images/1/p2-md-a.jpg"}
    assert sorted(saved) == ["p1-input.jpg", "p1-layout_det_res.jpg", "p1-md-a.jpg", "p2-md-a.jpg"]
    assert set(saved.values()) == {JPEG}
    assert answer["result"]["dataInfo"] == {"type": "pdf"} and answer["logId"] == "x"


def test_links_a_client_sent_back_and_answers_without_results_stay_as_they_are() -> None:
    back = page()
    back["markdown"]["images"] = {"imgs/a.jpg": "https://elsewhere/a.jpg"}  # type: ignore[index]
    answer = json.loads(link_images(envelope(back), lambda name, data: pytest.fail("nothing to save")))
    assert answer["result"]["layoutParsingResults"][0]["markdown"]["images"] == {
        "imgs/a.jpg": "https://elsewhere/a.jpg"}
    failure = b'{"logId":"x","errorCode":422,"errorMsg":"bad"}'
    assert link_images(failure, lambda name, data: pytest.fail("nothing to save")) is failure


def test_the_store_serves_only_its_own_names_and_forgets_old_answers(tmp_path: Path) -> None:
    store = AnswerImages(tmp_path)
    old, new = store.new_answer(), store.new_answer()
    store.save(old, "p1-input.jpg", JPEG)
    store.save(new, "p1-input.jpg", JPEG)
    assert store.path(new, "p1-input.jpg") == tmp_path / "images" / new / "p1-input.jpg"
    for answer, name in [(new, "../p1-input.jpg"), (new, ".."), ("..", "images"), (new[:-1] + "/", "x"),
                         (new, "p1-input.jpg/.."), (new, "missing.jpg"), ("0" * 32, "p1-input.jpg")]:
        assert store.path(answer, name) is None, (answer, name)
    with pytest.raises(ValueError):
        store.save(new, "../escape.jpg", JPEG)
    hour_ago = time.time() - 3600
    os.utime(tmp_path / "images" / old, (hour_ago, hour_ago))
    assert store.sweep(retention=60) == 1
    assert store.path(old, "p1-input.jpg") is None and store.path(new, "p1-input.jpg") is not None

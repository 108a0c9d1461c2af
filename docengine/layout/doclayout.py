"""GPU-profile layout detector: PP-DocLayoutV3 or V2 through transformers, without torchvision.

HF's image processors for these models need torchvision, which does not coexist with the CPU torch build; the
pre- and post-processing they do is small and follows them step by step here in plain torch: resize to
800x800 bicubic on the uint8 tensor, /255; sigmoid, top-Q over query x class, boxes scaled to the page,
reading order from the model's order logits, and for V3 a polygon from each region's mask.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from docengine.layout.labels import LABEL_IDS, NUM_LABELS
from docengine.types import Detection

INPUT_SIZE = 800
POLYGON_EPSILON = 0.004     # approxPolyDP tolerance, as a share of the contour's perimeter


def class_map(id2label: dict[int, str]) -> np.ndarray:
    """Model class index -> PP-DocLayout id.

    By name when the checkpoint's names identify all its classes uniquely and are all PP-DocLayout labels.
    Some HF configs collapse names (two ids, one name), or use generic ones (`LABEL_5`); for such a 25-class
    checkpoint the ids are taken as PP-DocLayout ids, the order every PP-DocLayout export uses.
    """
    names = {int(i): str(n).strip().lower().replace(" ", "_").replace("-", "_") for i, n in id2label.items()}
    if len(set(names.values())) == len(names) and all(n in LABEL_IDS for n in names.values()):
        return np.array([LABEL_IDS[names[i]] for i in range(len(names))])
    if sorted(names) == list(range(NUM_LABELS)):
        return np.arange(NUM_LABELS)
    raise ValueError(f"layout model classes are not the 25 PP-DocLayout labels: {sorted(names.values())}")


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class DocLayout:
    """PP-DocLayoutV3/V2 from a local safetensors directory; pages go through in batches of `batch_size`.

    Emits every (query, class) pair of the top-Q whose score reaches `score_floor`; the request's per-class
    thresholds are applied later by `postprocess` (a threshold under the floor acts as the floor). The
    directory is read locally only: a wrong path fails instead of reaching for the hub.
    """

    def __init__(self, model_dir: str | Path, *, device: str = "auto", batch_size: int = 8,
                 score_floor: float = 0.1) -> None:
        from transformers import AutoModelForObjectDetection

        self.device = resolve_device(device)
        self.model: Any = AutoModelForObjectDetection.from_pretrained(str(model_dir), local_files_only=True)
        self.model = self.model.to(self.device).eval()
        self._cls_ids = class_map(self.model.config.id2label)
        self.batch_size = batch_size
        self.score_floor = score_floor

    def detect(self, pages: list[np.ndarray]) -> list[list[Detection]]:
        out: list[list[Detection]] = []
        for start in range(0, len(pages), self.batch_size):
            out.extend(self._detect_batch(pages[start:start + self.batch_size]))
        return out

    @torch.inference_mode()
    def _detect_batch(self, pages: list[np.ndarray]) -> list[list[Detection]]:
        pixels = torch.cat([self._preprocess(page) for page in pages])
        outputs = self.model(pixel_values=pixels)
        sizes = torch.tensor([[p.shape[1], p.shape[0]] * 2 for p in pages], dtype=torch.float32)
        boxes = _cxcywh_to_xyxy(outputs.pred_boxes.float()) * sizes.to(self.device)[:, None, :]
        scores = outputs.logits.float().sigmoid()
        order = order_seq(outputs.order_logits.float())
        masks = getattr(outputs, "out_masks", None)

        num_queries, num_classes = scores.shape[1:]
        top_scores, index = scores.flatten(1).topk(num_queries, dim=1)
        labels, queries = index % num_classes, index // num_classes
        results = []
        for b, page in enumerate(pages):
            keep = top_scores[b] >= self.score_floor
            q = queries[b][keep]
            # a mask pixel belongs to the region when its probability is over 0.5, i.e. its logit over 0
            page_masks = (masks[b, q] > 0).to(torch.uint8).cpu().numpy() if masks is not None else None
            results.append(self._page_detections(
                page.shape[:2], top_scores[b][keep].cpu().numpy(), labels[b][keep].cpu().numpy(),
                boxes[b, q].cpu().numpy(), order[b, q].cpu().numpy(), page_masks))
        return results

    def _preprocess(self, page: np.ndarray) -> torch.Tensor:
        """RGB uint8 page -> (1, 3, 800, 800) float in [0, 1] on the device.

        The resize runs on the CPU, on the uint8 tensor, exactly as HF's processor does (5-8 ms a page); only
        the 800x800 result goes to the device.
        """
        image = torch.from_numpy(np.ascontiguousarray(page)).permute(2, 0, 1)[None]
        resized = F.interpolate(image, size=(INPUT_SIZE, INPUT_SIZE), mode="bicubic", align_corners=False,
                                antialias=False)
        return resized.to(self.device).float() / 255.0

    def _page_detections(self, shape: tuple[int, ...], scores: np.ndarray, labels: np.ndarray,
                         boxes: np.ndarray, order: np.ndarray, masks: np.ndarray | None) -> list[Detection]:
        dets = []
        for k in range(len(scores)):
            x1, y1, x2, y2 = (float(v) for v in boxes[k])
            polygon = mask_polygon(masks[k], boxes[k], shape) if masks is not None else None
            dets.append(Detection(int(self._cls_ids[labels[k]]), float(scores[k]), (x1, y1, x2, y2),
                                  float(order[k]), polygon))
        return dets


def _cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    centre, size = boxes[..., :2], boxes[..., 2:]
    return torch.cat([centre - size / 2, centre + size / 2], dim=-1)


def order_seq(order_logits: torch.Tensor) -> torch.Tensor:
    """Reading rank of every query from the pairwise order logits (B, Q, Q): lower reads first.

    `P = sigmoid(logits)`, P[i, j] being the belief that i precedes j. A query's votes are the column sums of
    P's strict upper triangle and (1 - P^T)'s strict lower triangle; ranking the votes gives the order.
    """
    p = order_logits.sigmoid()
    votes = p.triu(diagonal=1).sum(dim=1) + (1.0 - p.transpose(1, 2)).tril(diagonal=-1).sum(dim=1)
    pointers = votes.argsort(dim=1)
    ranks = torch.arange(votes.shape[1], device=votes.device).expand_as(pointers)
    return torch.empty_like(pointers).scatter_(1, pointers, ranks)


def mask_polygon(mask: np.ndarray, box: np.ndarray, shape: tuple[int, ...]) -> list[tuple[float, float]]:
    """Outline of a region: the largest contour of its binary mask (1/4 of the 800 input) within its box,
    simplified with approxPolyDP; the box's rectangle when the mask gives nothing usable."""
    height, width = shape[:2]
    x1, y1, x2, y2 = (int(v) for v in box)
    rect = [(float(x1), float(y1)), (float(x2), float(y1)), (float(x2), float(y2)), (float(x1), float(y2))]
    if x2 <= x1 or y2 <= y1:
        return rect
    mask_h, mask_w = mask.shape
    sx, sy = mask_w / width, mask_h / height
    mx1, mx2 = np.clip([round(x1 * sx), round(x2 * sx)], 0, mask_w)
    my1, my2 = np.clip([round(y1 * sy), round(y2 * sy)], 0, mask_h)
    crop = mask[my1:my2, mx1:mx2]
    if crop.size == 0 or not crop.any():
        return rect
    crop = cv2.resize(crop, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(crop, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return rect
    contour = max(contours, key=cv2.contourArea)
    points = cv2.approxPolyDP(contour, POLYGON_EPSILON * cv2.arcLength(contour, True), True).reshape(-1, 2)
    if len(points) < 4:
        return rect
    return [(float(x + x1), float(y + y1)) for x, y in points]

"""Tiny, randomly initialised PP-DocLayoutV3 / V2 checkpoints saved like the real ones, for tests.

They load through the production loader (`AutoModelForObjectDetection.from_pretrained(dir)`) and run in well
under a second on CPU. HF's own initialisation collapses every output to one box and one score, so weights are
re-drawn from a seeded generator; the outputs then vary per query and per page and are deterministic.
Nothing is downloaded.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from docengine.layout.labels import LABELS

Version = Literal["v3", "v2"]

V2_THRESHOLDS = [0.4 if i in (5, 6, 15, 17, 22, 23) else 0.45 if i == 20 else 0.5 for i in range(len(LABELS))]
V2_CLASS_ORDER = [4, 2, 14, 1, 5, 7, 8, 6, 11, 11, 9, 13, 10, 10, 1, 2, 3, 0, 2, 2, 12, 1, 2, 15, 6]


def _backbone(v3: bool) -> dict:
    stages = ["stage1", "stage2", "stage3", "stage4"] if v3 else ["stage2", "stage3", "stage4"]
    return {
        "model_type": "hgnet_v2", "arch": "L",
        "out_features": stages, "return_idx": [0, 1, 2, 3] if v3 else [1, 2, 3],
        "stem_channels": [3, 8, 8],
        "stage_in_channels": [8] * 4, "stage_mid_channels": [8] * 4, "stage_out_channels": [8] * 4,
        "stage_num_blocks": [1] * 4, "stage_numb_of_layers": [1] * 4, "hidden_sizes": [8] * 4,
    }


def tiny_config(version: Version, id2label: dict[int, str] | None = None):  # noqa: ANN201 (transformers config)
    from transformers import PPDocLayoutV2Config, PPDocLayoutV3Config

    common = dict(
        backbone_config=_backbone(version == "v3"),
        encoder_hidden_dim=16, encoder_in_channels=[8, 8, 8], encoder_layers=1, encoder_ffn_dim=32,
        encoder_attention_heads=2,
        d_model=16, decoder_in_channels=[16, 16, 16], decoder_ffn_dim=32, decoder_layers=1,
        decoder_attention_heads=2, num_queries=30, num_denoising=0, global_pointer_head_size=8,
        id2label=id2label or dict(enumerate(LABELS)),
    )
    if version == "v3":
        return PPDocLayoutV3Config(mask_feature_channels=[8, 8], x4_feat_dim=8, num_prototypes=8, **common)
    reading_order = dict(
        hidden_size=16, num_attention_heads=2, intermediate_size=32, num_hidden_layers=1, coordinate_size=8,
        shape_size=8, num_classes=20, relation_bias_embed_dim=4, global_pointer_head_size=8,
    )
    return PPDocLayoutV2Config(reading_order_config=reading_order, class_thresholds=V2_THRESHOLDS,
                               class_order=V2_CLASS_ORDER, **common)


@torch.no_grad()
def _reinit(model: nn.Module, seed: int) -> None:
    """Weights with usable spread (He-style convs, unit batch norms), drawn from a seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan_in = module.in_channels // module.groups * math.prod(module.kernel_size)
            module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * math.sqrt(2 / fan_in))
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.Linear):
            std = math.sqrt(1 / module.in_features)
            module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * std)
            if module.bias is not None:
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.5)
        elif "BatchNorm" in type(module).__name__:
            module.weight.fill_(1.0)
            module.bias.zero_()


def build_tiny_doclayout(directory: str | Path, version: Version = "v3", *, seed: int = 0,
                         id2label: dict[int, str] | None = None) -> Path:
    """Save a tiny V3 or V2 checkpoint to `directory`: config.json, model.safetensors and the
    preprocessor_config.json HF writes for these models."""
    from transformers import PPDocLayoutV2ForObjectDetection, PPDocLayoutV3ForObjectDetection

    directory = Path(directory)
    torch.manual_seed(seed)
    cls = PPDocLayoutV3ForObjectDetection if version == "v3" else PPDocLayoutV2ForObjectDetection
    model = cls(tiny_config(version, id2label)).eval()
    _reinit(model, seed)
    model.save_pretrained(directory)
    processor = {
        "image_processor_type": f"PPDocLayout{version.upper()}ImageProcessor",
        "do_resize": True, "size": {"height": 800, "width": 800}, "resample": 3,
        "do_rescale": True, "rescale_factor": 1 / 255,
        "do_normalize": True, "image_mean": [0, 0, 0], "image_std": [1, 1, 1],
    }
    (directory / "preprocessor_config.json").write_text(json.dumps(processor, indent=2))
    return directory

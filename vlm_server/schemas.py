"""The OpenAI chat-completions subset the pipeline sends (PaddleX's GenAI client) and vLLM answers."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# vLLM's PaddleOCR-VL processor defaults, used when a request sends no mm_processor_kwargs.
MIN_PIXELS = 112_896
MAX_PIXELS = 1_003_520
PATCH = 28  # 14 px patches merged 2x2: one visual token per 28x28 pixels


class ImageURL(BaseModel):
    url: str
    detail: str | None = None


class ImagePart(BaseModel):
    type: Literal["image_url"]
    image_url: ImageURL


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


Part = Annotated[ImagePart | TextPart, Field(discriminator="type")]


class Message(BaseModel):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[Part] | None = None


class MMProcessorKwargs(BaseModel):
    model_config = ConfigDict(extra="allow")

    min_pixels: int | None = Field(None, ge=1)
    max_pixels: int | None = Field(None, ge=1)


class ChatCompletionRequest(BaseModel):
    """Sampling fields are accepted and ignored: the recogniser is deterministic and not token based."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[Message] = Field(min_length=1)
    temperature: float | None = Field(None, ge=0)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    repetition_penalty: float | None = Field(None, gt=0)
    skip_special_tokens: bool = True
    mm_processor_kwargs: MMProcessorKwargs | None = None
    stream: bool = False
    n: int = Field(1, ge=1)


def visual_tokens(height: int, width: int, kwargs: MMProcessorKwargs | None) -> int:
    """Image tokens as vLLM's PaddleOCR-VL processor counts them (smart_resize, factor 28)."""
    min_pixels = (kwargs and kwargs.min_pixels) or MIN_PIXELS
    max_pixels = (kwargs and kwargs.max_pixels) or MAX_PIXELS
    h, w = max(height, PATCH), max(width, PATCH)
    h, w = round(h / PATCH) * PATCH, round(w / PATCH) * PATCH
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h, w = math.floor(height / beta / PATCH) * PATCH, math.floor(width / beta / PATCH) * PATCH
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h, w = math.ceil(height * beta / PATCH) * PATCH, math.ceil(width * beta / PATCH) * PATCH
    return max(1, (h // PATCH) * (w // PATCH))


def completion(*, id: str, created: int, model: str, content: str, prompt_tokens: int) -> dict[str, Any]:
    """A `chat.completion` object; completion tokens are counted as characters (an upper bound)."""
    return {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(content),
            "total_tokens": prompt_tokens + len(content),
        },
    }

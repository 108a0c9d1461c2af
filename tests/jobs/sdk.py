"""PaddleOCR's Job API client, from the paddleocr 3.7.0 wheel, run unchanged.

The wheel is installed without its dependencies (PaddleX and a deep-learning stack, which the client never
uses), and `paddleocr/__init__.py` imports them, so the package is registered here as a bare namespace that
skips that file; `paddleocr._api_client` and the `_utils` it imports then load and run exactly as shipped.
`cli_main` runs the `paddleocr api ...` subcommand the same way (the client's own parser and executor).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import types


def _bare_package() -> None:
    if "paddleocr" in sys.modules:
        return
    spec = importlib.util.find_spec("paddleocr")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the paddleocr wheel is not installed (make installs it)")
    package = types.ModuleType("paddleocr")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["paddleocr"] = package


_bare_package()

from paddleocr._api_client.async_client import AsyncPaddleOCRClient  # noqa: E402
from paddleocr._api_client.cli import register_api_command  # noqa: E402
from paddleocr._api_client.client import PaddleOCRClient  # noqa: E402
from paddleocr._api_client.errors import (  # noqa: E402
    AuthError,
    InvalidRequestError,
    JobFailedError,
    RateLimitError,
    ServiceUnavailableError,
)
from paddleocr._api_client.models import PaddleOCRVLOptions  # noqa: E402

__all__ = ["AsyncPaddleOCRClient", "AuthError", "InvalidRequestError", "JobFailedError", "PaddleOCRClient",
           "PaddleOCRVLOptions", "RateLimitError", "ServiceUnavailableError", "cli_main"]


def cli_main(argv: list[str]) -> None:
    """`paddleocr <argv>`, for the `api` subcommand."""
    parser = argparse.ArgumentParser(prog="paddleocr")
    register_api_command(parser.add_subparsers(dest="subcommand"))
    args = parser.parse_args(argv)
    args.executor(args)


if __name__ == "__main__":
    cli_main(sys.argv[1:])

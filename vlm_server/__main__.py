"""`python -m vlm_server`: the offline recogniser on HPS_VLM_HOST:HPS_VLM_PORT (127.0.0.1:8118)."""

from __future__ import annotations

import uvicorn

from vlm_server.app import create_app
from vlm_server.settings import VLMServerSettings


def main() -> None:
    settings = VLMServerSettings()
    uvicorn.run(create_app(settings), host=settings.vlm_host, port=settings.vlm_port, log_level="info")


if __name__ == "__main__":
    main()

"""Triton adapter for `/layout-parsing`: hands each request to the engine and answers it when it is done."""

import logging
import os

import triton_python_backend_utils as pb_utils

from docengine.pipeline import Engine
from docengine.serving import AsyncRequestRunner
from docengine.settings import EngineSettings


class TritonPythonModel:
    def initialize(self, args):
        logging.basicConfig(level=os.environ.get("HPS_LOG_LEVEL", "INFO").upper(),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        settings = EngineSettings()
        if args["model_instance_kind"] == "GPU" and settings.layout_device == "auto":
            settings.layout_device = f"cuda:{args['model_instance_device_id']}"
        self.runner = AsyncRequestRunner(pb_utils, max_in_flight=settings.max_in_flight_requests)
        self.engine = Engine(settings)

    def execute(self, requests):
        self.runner.submit(requests, self.engine.layout_parsing)
        return None

    def finalize(self):
        self.runner.run(self.engine.aclose())
        self.runner.stop()

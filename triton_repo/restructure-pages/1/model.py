"""Triton adapter for `/restructure-pages`: CPU work only, no models loaded."""

import logging
import os

import triton_python_backend_utils as pb_utils

from docengine.pipeline import restructure
from docengine.serving import AsyncRequestRunner


class TritonPythonModel:
    def initialize(self, args):
        logging.basicConfig(level=os.environ.get("HPS_LOG_LEVEL", "INFO").upper(),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.runner = AsyncRequestRunner(pb_utils)

    def execute(self, requests):
        self.runner.submit(requests, restructure)
        return None

    def finalize(self):
        self.runner.stop()

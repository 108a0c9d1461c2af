"""Triton adapter for `/restructure-pages`: CPU work only, no models loaded."""

import triton_python_backend_utils as pb_utils

from docengine.pipeline import restructure
from docengine.serving import AsyncRequestRunner, setup_logging


class TritonPythonModel:
    def initialize(self, args):
        setup_logging()
        self.runner = AsyncRequestRunner(pb_utils)

    def execute(self, requests):
        self.runner.submit(requests, restructure)
        return None

    def finalize(self):
        self.runner.stop()

"""Triton adapter for `/layout-parsing`: hands each request to the engine and answers it when it is done."""

import triton_python_backend_utils as pb_utils

from docengine.pipeline import Engine
from docengine.serving import AsyncRequestRunner, setup_logging
from docengine.settings import EngineSettings
from docengine.triton_metrics import MetricsExporter


class TritonPythonModel:
    def initialize(self, args):
        setup_logging()
        settings = EngineSettings()
        if args["model_instance_kind"] == "GPU" and settings.layout_device == "auto":
            settings.layout_device = f"cuda:{args['model_instance_device_id']}"
        self.runner = AsyncRequestRunner(pb_utils, max_in_flight=settings.max_in_flight_requests)
        self.engine = Engine(settings)
        # Loaded now rather than on the first image page, so that its threads are there from the start.
        self.engine.text_lines.load()
        self.metrics = MetricsExporter(pb_utils, self.engine.stats,
                                       {"model": args["model_name"], "instance": args["model_instance_name"]})

    def execute(self, requests):
        self.runner.submit(requests, self.engine.layout_parsing)
        return None

    def finalize(self):
        self.metrics.stop()
        self.runner.run(self.engine.aclose())
        self.runner.stop()

"""Test stand-in for the `layout-parsing` and `restructure-pages` Triton models.

Speaks the real wire format (BYTES `input` -> BYTES `output` holding a compact JSON envelope, with its HTTP
status in the INT32 `status`; the logId is the body's, else the Triton request id) and answers each request
from its own thread through the response sender, as the real model does, so that slow requests overlap. What
it does is steered by the request's `_gatewayTest` object:

    {}                      echo: a success envelope whose result carries the request it received
    {"sleep": s}            wait s seconds, polling `request.is_cancelled()`, then echo
    {"error": code}         an error envelope with that errorCode
    {"garbage": true}       output that is not JSON, and no status
    {"notEnvelope": true}   JSON that is not an envelope, and no status
    {"raise": "message"}    a Triton-level error
    {"noEcho": true}        a success envelope without the request in it (for big bodies)

Every start, finish and cancellation is appended as a JSON line to the file named by `HPS_TEST_EVENTS`, so
tests can see what the Triton side saw.
"""

import json
import os
import threading
import time

import numpy as np
import triton_python_backend_utils as pb_utils

CONTROL = "_gatewayTest"
_lock = threading.Lock()


def _record(event, **fields):
    path = os.environ.get("HPS_TEST_EVENTS")
    if not path:
        return
    line = json.dumps({"event": event, "t": time.time(), "pid": os.getpid(), **fields}) + "\n"
    with _lock, open(path, "a") as fh:
        fh.write(line)


def _output(payload, status=None):
    tensors = [pb_utils.Tensor("output", np.array([[payload]], dtype=np.object_))]
    if status is not None:
        tensors.append(pb_utils.Tensor("status", np.array([[status]], dtype=np.int32)))
    return pb_utils.InferenceResponse(output_tensors=tensors)


def _dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


class TritonPythonModel:
    def initialize(self, args):
        self.model_name = args["model_name"]

    def execute(self, requests):
        for request in requests:
            threading.Thread(target=self._answer, args=(request,), daemon=True).start()
        return None

    def _answer(self, request):
        sender = request.get_response_sender()
        final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
        try:
            response = self._handle(request)
        except Exception as exc:  # the test model must always answer
            response = pb_utils.InferenceResponse(error=pb_utils.TritonError(f"test model failed: {exc}"))
        sender.send(response, flags=final)

    def _handle(self, request):
        raw = pb_utils.get_input_tensor_by_name(request, "input").as_numpy()[0][0]
        body = json.loads(raw)
        ctl = body.get(CONTROL) or {}
        log_id = body.get("logId") or request.request_id()
        tag = {"model": self.model_name, "logId": log_id, "requestId": request.request_id()}
        _record("start", **tag)
        deadline = time.monotonic() + float(ctl.get("sleep", 0))
        while time.monotonic() < deadline:
            if request.is_cancelled():
                _record("cancelled", **tag)
                return pb_utils.InferenceResponse(
                    error=pb_utils.TritonError("cancelled", pb_utils.TritonError.CANCELLED))
            time.sleep(0.02)
        _record("finish", **tag)
        if "raise" in ctl:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(ctl["raise"])))
        if ctl.get("garbage"):
            return _output(b"<html>not json")
        if ctl.get("notEnvelope"):
            return _output(_dumps([1, 2, 3]))
        if "error" in ctl:
            code = int(ctl["error"])
            envelope = {"logId": log_id, "errorCode": code, "errorMsg": f"test error {code}"}
            return _output(_dumps(envelope), code)
        echo = {"model": self.model_name, "size": len(raw), **tag}
        if not ctl.get("noEcho"):
            echo["body"] = body
        result = {"layoutParsingResults": [], "echo": echo}
        if self.model_name == "layout-parsing":
            result["dataInfo"] = {"type": "image", "width": 1, "height": 1}
        envelope = {"logId": log_id, "errorCode": 0, "errorMsg": "Success", "result": result}
        return _output(_dumps(envelope), 200)

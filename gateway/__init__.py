"""Tier 1 of the serving stack: the public HTTP API in front of Triton (FastAPI, uvicorn, gRPC).

It knows HTTP and gRPC and nothing about documents: it checks requests, protects the tiers behind it
(concurrency, queue, rate and size limits, timeouts) and forwards them to the Triton models of the same name.
"""

__version__ = "0.1.0"

"""The PaddleOCR-VL document-parsing engine: plain Python, no Triton or FastAPI import.

Triton's `layout-parsing` and `restructure-pages` models are thin adapters over `docengine.pipeline`.
"""

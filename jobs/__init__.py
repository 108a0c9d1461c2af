"""PaddleOCR's asynchronous Job API (`/api/v2/ocr/jobs`) on this stack, so that its SDK works unchanged.

A job is a document parsed page by page through the same Triton model as `/layout-parsing`: each page goes as
a one-page request marked as background work, so interactive requests go first in layout and at the VLM. Jobs
and their pages live in a store (SQLite in a data directory by default, Redis for several replicas) and the
files beside them (the input, a JSONL line per page, the images), so that a job survives a restart and resumes
from its last finished page. Results are fetched through pre-signed links that expire with the job.

Modules: `settings`, `protocol` (wire shapes and errors), `documents` (page counts, one-page files),
`store/` (the job table), `files` (the blobs), `links` (signed URLs), `results` (a page's answer as a JSONL
line), `runner` (works the jobs), `routes` (the HTTP API), `metrics`.
"""

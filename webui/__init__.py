"""The web page for people: drop a document, watch its pages arrive, read and check the result.

A static page (`index.html`, plain JS modules, vendored libraries under `static/vendor/`) that drives the
Job API from the browser. The gateway mounts it with `webui.routes.install(app)`; it needs no build step.
"""

"""Images by URL: the images of a synchronous answer stored beside the jobs' files and linked, not inlined.

A visualised 30-page answer carries tens of megabytes of Base64 JPEG that every client must read. With
`HPS_RETURN_IMG_URLS` (PaddleX's serving calls it `return_img_urls`), the gateway stores each image of a
`/layout-parsing` or `/restructure-pages` answer (`markdown.images`, `outputImages`, `inputImage`) as a
file under the jobs' data directory and answers its URL instead. The files expire with the jobs'
retention, and are served behind the same API keys as the requests that made them.
"""

from imagelinks.service import ImageLinks

__all__ = ["ImageLinks"]

"""A client as PaddleOCR's documentation writes one for the PaddleOCR-VL service (its Python example in
"service deployment"): plain `requests`, Base64 file plus `fileType`, POST /layout-parsing, then per page the
Markdown to `markdown_<i>/doc.md`, its images to their relative paths, and the output images to JPEG files.

Kept in that example's style on purpose: it proves the service works for users who copy it unchanged.

    python paddleocr_client.py http://localhost:8080/layout-parsing ./demo.jpg 1
"""

import base64
import pathlib
import sys

import requests

API_URL = sys.argv[1]  # the service URL
file_path = sys.argv[2]
file_type = int(sys.argv[3])  # 0: PDF, 1: image

# Base64-encode the local file
with open(file_path, "rb") as file:
    file_bytes = file.read()
    file_data = base64.b64encode(file_bytes).decode("ascii")

payload = {
    "file": file_data,  # Base64 of the file, or its URL
    "fileType": file_type,
}

# Call the API
response = requests.post(API_URL, json=payload)

# Handle the answer
assert response.status_code == 200
result = response.json()["result"]
for i, res in enumerate(result["layoutParsingResults"]):
    print(res["prunedResult"])
    md_dir = pathlib.Path(f"markdown_{i}")
    md_dir.mkdir(exist_ok=True)
    (md_dir / "doc.md").write_text(res["markdown"]["text"])
    for img_path, img in res["markdown"]["images"].items():
        img_path = md_dir / img_path
        img_path.parent.mkdir(parents=True, exist_ok=True)
        img_path.write_bytes(base64.b64decode(img))
    print(f"Markdown document saved at {md_dir / 'doc.md'}")
    for img_name, img in res["outputImages"].items():
        img_path = f"{img_name}_{i}.jpg"
        pathlib.Path(img_path).parent.mkdir(exist_ok=True)
        with open(img_path, "wb") as f:
            f.write(base64.b64decode(img))
        print(f"Output image saved at {img_path}")

"""Tier 3: the recogniser behind the engine, speaking the OpenAI chat-completions subset vLLM serves.

On a GPU it is vLLM serving PaddleOCR-VL-0.9B (`Dockerfile`, `entrypoint.sh`); offline on CPUs it is
`python -m vlm_server`, PP-OCRv4 ONNX models answering the same prompts in the same shapes.
"""

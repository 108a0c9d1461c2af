"""Write a serving copy of this model repository for a profile, from the one committed config per model.

The committed `config.pbtxt` files are the CPU variant and are served as they are by the local stack. For the
GPU profile (and for tuning either profile) this script copies the repository and rewrites only what differs:
`layout-parsing`'s instance group (KIND_GPU on the chosen device), its instance count and its batching delay.
Triton ignores plain files at the top of a repository, so this script can live here. Standard library only.

    python triton_repo/configure.py --profile gpu --device-id 0 --out /tmp/model_repo
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
GPU_MODELS = ("layout-parsing",)  # restructure-pages loads no model and stays on CPU


def instance_group(kind: str, count: int, device_id: int | None) -> str:
    gpus = f"\n    gpus: [ {device_id} ]" if device_id is not None else ""
    return f"instance_group [\n  {{\n    count: {count}\n    kind: {kind}{gpus}\n  }}\n]"


def render(config: str, *, gpu: bool, device_id: int, instances: int, queue_delay_us: int | None) -> str:
    group = instance_group("KIND_GPU" if gpu else "KIND_CPU", instances, device_id if gpu else None)
    config, n = re.subn(r"instance_group\s*\[.*?\n\]", group, config, count=1, flags=re.S)
    if n != 1:
        raise SystemExit("configure.py: no instance_group block found in config.pbtxt")
    if queue_delay_us is not None:
        delay = f"max_queue_delay_microseconds: {queue_delay_us}"
        config = re.sub(r"max_queue_delay_microseconds:\s*\d+", delay, config)
    return config


def write_repository(out: Path, *, profile: str, device_id: int, instances: int,
                     queue_delay_us: int | None) -> None:
    for model_dir in sorted(p for p in HERE.iterdir() if (p / "config.pbtxt").is_file()):
        target = out / model_dir.name
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(model_dir, target, ignore=shutil.ignore_patterns("__pycache__"))
        if model_dir.name in GPU_MODELS:
            config = (model_dir / "config.pbtxt").read_text()
            (target / "config.pbtxt").write_text(render(
                config, gpu=profile == "gpu", device_id=device_id, instances=instances,
                queue_delay_us=queue_delay_us))


def main(argv: list[str] | None = None) -> None:
    env = os.environ
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=("gpu", "cpu"), default=env.get("HPS_PROFILE", "gpu"))
    parser.add_argument("--device-id", type=int,
                        default=int(env.get("GPU_DEVICE_ID", env.get("HPS_DEVICE_ID", "0"))))
    parser.add_argument("--instances", type=int, default=int(env.get("HPS_TRITON_INSTANCES", "1")))
    parser.add_argument("--queue-delay-us", type=int,
                        default=int(env["HPS_TRITON_QUEUE_DELAY_US"]) if env.get("HPS_TRITON_QUEUE_DELAY_US")
                        else None)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.instances < 1:
        parser.error("--instances must be at least 1")
    args.out.mkdir(parents=True, exist_ok=True)
    write_repository(args.out, profile=args.profile, device_id=args.device_id, instances=args.instances,
                     queue_delay_us=args.queue_delay_us)
    print(f"model repository for the {args.profile} profile written to {args.out}")


if __name__ == "__main__":
    main()

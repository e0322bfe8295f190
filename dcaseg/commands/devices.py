"""``dcaseg devices``: which compute devices torch can use here (for people and for Slicer's GUI)."""
from __future__ import annotations

import argparse
import json
import os
from typing import Any

HELP = "list the compute devices torch sees (CPU, CUDA GPUs with memory, Apple MPS)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object (for programs)")


def describe_devices() -> dict[str, Any]:
    """torch version, CUDA build/availability and one entry per usable device (CPU first)."""
    import torch

    from ..inference.devices import mps_available

    devices: list[dict[str, Any]] = [{"name": "cpu", "label": f"CPU ({os.cpu_count() or 1} cores)"}]
    cuda_available = bool(torch.cuda.is_available())
    if cuda_available:
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            memory_gb = round(props.total_memory / 2**30, 1)
            devices.append({"name": f"cuda:{index}", "label": f"{props.name} ({memory_gb:g} GB)",
                            "memory_gb": memory_gb})
    mps = mps_available()
    if mps:
        devices.append({"name": "mps", "label": "Apple GPU (MPS)"})
    return {"torch": torch.__version__, "cuda_build": torch.version.cuda, "cuda_available": cuda_available,
            "mps_available": mps, "devices": devices}


def run(args: argparse.Namespace) -> int:
    info = describe_devices()
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"torch {info['torch']} (CUDA build: {info['cuda_build'] or 'none'})")
    for device in info["devices"]:
        print(f"{device['name']:<8} {device['label']}")
    return 0

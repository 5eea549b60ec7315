"""Safetensors files read strictly and written deterministically, so a folder read and written again keeps its bytes.

Layout (as the format defines it): an unsigned 64-bit little-endian header length n, n bytes of JSON (an object:
optional ``__metadata__`` of strings, then per tensor ``{"dtype", "shape", "data_offsets": [begin, end]}`` relative to
the data), then the data. The reader checks every length and offset; the writer puts ``__metadata__`` first, keeps the
tensors' header order and data order as given, writes compact JSON and pads the header with spaces to a multiple of 8
(what `loraswitch`, scripts/modelfix's writer and the safetensors library all do).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import AdapterError

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
NAMES = {v: k for k, v in DTYPES.items()}


@dataclass
class SafetensorsFile:
    """A file's tensors by name, in header order (CPU, each its stored dtype), its metadata, and the order the
    tensors' data lie in the file (which may differ from the header's)."""
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str] | None = None
    data_order: list[str] = field(default_factory=list)


def read_safetensors(path: str | os.PathLike) -> SafetensorsFile:
    path = str(path)
    try:
        blob = Path(path).read_bytes()
    except OSError as e:
        raise AdapterError(path, "file", f"cannot be read ({e.strerror})") from None
    if len(blob) < 8:
        raise AdapterError(path, "header", f"the file has {len(blob)} bytes, fewer than the 8 of the header length")
    n = int.from_bytes(blob[:8], "little")
    if n > len(blob) - 8:
        raise AdapterError(path, "header", f"length {n} runs past the end of the file ({len(blob)} bytes)")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AdapterError(path, "header", f"is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise AdapterError(path, "header", "is not a JSON object")
    data = memoryview(blob)[8 + n:]
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise AdapterError(path, "__metadata__", "must map names to strings")
    tensors, spans = {}, {}
    for name, entry in header.items():
        tensors[name] = _tensor(path, name, entry, data)
        spans[name] = entry["data_offsets"][0]
    return SafetensorsFile(tensors, metadata, sorted(spans, key=lambda k: (spans[k], list(header).index(k))))


def _tensor(path: str, name: str, entry, data: memoryview) -> torch.Tensor:
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise AdapterError(path, f"tensor {name}", "header entry must have exactly dtype, shape and data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in DTYPES:
        raise AdapterError(path, f"tensor {name}", f"dtype {dtype} is not supported", "F32, F16 and BF16 are")
    if not (isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise AdapterError(path, f"tensor {name}", f"shape {shape} is not a list of sizes")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
        raise AdapterError(path, f"tensor {name}", f"data_offsets {offsets} is not [begin, end]")
    begin, end = offsets
    size = math.prod(shape) * DTYPES[dtype].itemsize
    if not 0 <= begin <= end <= len(data):
        raise AdapterError(path, f"tensor {name}", f"data_offsets {offsets} outside the {len(data)} bytes of data")
    if end - begin != size:
        raise AdapterError(path, f"tensor {name}", f"{end - begin} bytes of data for shape {shape} {dtype} ({size})")
    if size == 0:
        return torch.empty(shape, dtype=DTYPES[dtype])
    return torch.frombuffer(bytearray(data[begin:end]), dtype=DTYPES[dtype]).reshape(shape)


def write_safetensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None,
                      data_order: list[str] | None = None) -> None:
    """Writes `tensors` (header in their order; data in `data_order`, default the same) in their own dtypes,
    little-endian, through a temporary file renamed over `path`."""
    order = list(data_order) if data_order is not None else list(tensors)
    if sorted(order) != sorted(tensors):
        raise AdapterError(str(path), "data_order", "must name every tensor once")
    offsets, blobs, at = {}, [], 0
    for name in order:
        t = tensors[name].detach().to("cpu").contiguous()
        if t.dtype not in NAMES:
            raise AdapterError(str(path), f"tensor {name}", f"dtype {t.dtype} cannot be written", "F32, F16, BF16")
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        offsets[name] = (at, at + len(raw))
        blobs.append(raw)
        at += len(raw)
    header: dict = {}
    if metadata is not None:
        header["__metadata__"] = dict(metadata)
    for name, t in tensors.items():
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": list(offsets[name])}
    head = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    head += b" " * (-len(head) % 8)
    tmp = f"{path}.partial-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(len(head).to_bytes(8, "little"))
        f.write(head)
        for raw in blobs:
            f.write(raw)
    os.replace(tmp, path)

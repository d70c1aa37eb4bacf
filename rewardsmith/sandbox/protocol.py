"""Framing between host and worker: two 4-byte lengths, a JSON object, then raw bytes.

The JSON object carries the request or reply; the raw bytes carry float64/int64 arrays
(observations, rewards) whose layout the JSON names. Only plain data crosses: the host never
unpickles what a worker sends, and refuses frames larger than ``MAX_FRAME``.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

__all__ = ["MAX_FRAME", "FrameError", "read_frame", "write_frame"]

MAX_FRAME = 16 * 1024 * 1024
_HEADER = struct.Struct("<II")


class FrameError(Exception):
    """The other side closed the pipe or sent something that is not a frame."""


def write_frame(fd: int, message: dict[str, Any], blob: bytes = b"") -> None:
    body = json.dumps(message, separators=(",", ":"), allow_nan=True).encode()
    data = _HEADER.pack(len(body), len(blob)) + body + blob
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def read_frame(fd: int) -> tuple[dict[str, Any], bytes]:
    size, blob_size = _HEADER.unpack(_read_exact(fd, _HEADER.size))
    if size + blob_size > MAX_FRAME:
        raise FrameError(f"frame of {size + blob_size} bytes exceeds the {MAX_FRAME}-byte cap")
    data = _read_exact(fd, size + blob_size)
    try:
        message = json.loads(data[:size])
    except (ValueError, RecursionError) as exc:
        raise FrameError(f"malformed frame: {exc}") from None
    if not isinstance(message, dict):
        raise FrameError("frame is not a JSON object")
    return message, data[size:]


def _read_exact(fd: int, size: int) -> bytes:
    chunks = []
    remaining = size
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise FrameError("the other side closed the pipe")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)

"""Framing between host and worker: two 4-byte lengths, a JSON object, then raw bytes.

The JSON object carries the request or reply; the raw bytes carry float64/int64 arrays
(observations, rewards) whose layout the JSON names. Only plain data crosses: the host never
unpickles what a worker sends, and refuses frames larger than ``MAX_FRAME``.
"""

from __future__ import annotations

import json
import os
import re
import select
import struct
import time
from typing import Any

__all__ = [
    "COMPONENT_NAME_RULE", "MAX_COMPONENTS", "MAX_COMPONENT_NAME", "MAX_FRAME", "FrameError", "FrameTimeout",
    "is_component_name", "read_frame", "wait_readable", "write_frame",
]

MAX_FRAME = 16 * 1024 * 1024
MAX_COMPONENTS = 32
"""The most distinct component names a program may return over its whole life (one call, or all the
calls since it was loaded, together): the worker refuses more in one call, the host counts across calls.
Every name becomes a row in the curves, the analysis, the report and the next prompt, so a program that
invents new names as it runs would grow all of them without bound."""
MAX_COMPONENT_NAME = 40
"""The longest component name, in characters."""
COMPONENT_NAME_RULE = (f"component names are 1 to {MAX_COMPONENT_NAME} ASCII letters, digits, '_', '.' or '-' "
                       "(such as 'upright' or 'pole.angle'), and a program returns the same fixed set of at most "
                       f"{MAX_COMPONENTS} of them on every call")
"""The rule on component names, as every refusal states it."""
_COMPONENT_NAME = re.compile(f"[A-Za-z0-9_.\\-]{{1,{MAX_COMPONENT_NAME}}}")
_HEADER = struct.Struct("<II")


def is_component_name(name: object) -> bool:
    """Whether ``name`` follows :data:`COMPONENT_NAME_RULE`: plain ASCII, so no spaces, markup, control
    characters or look-alike letters reach a terminal, a page or a prompt."""
    return type(name) is str and _COMPONENT_NAME.fullmatch(name) is not None


class FrameError(Exception):
    """The other side closed the pipe or sent something that is not a frame."""


class FrameTimeout(FrameError):
    """The other side did not send a whole frame before the deadline."""


def write_frame(fd: int, message: dict[str, Any], blob: bytes = b"") -> None:
    body = json.dumps(message, separators=(",", ":"), allow_nan=True).encode()
    data = _HEADER.pack(len(body), len(blob)) + body + blob
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def read_frame(fd: int, deadline: float | None = None) -> tuple[dict[str, Any], bytes]:
    """Read one frame.

    With ``deadline`` (a ``time.monotonic()`` value), ``fd`` must be non-blocking: the read then
    never waits past the deadline, whatever the other side sends or withholds.
    """
    size, blob_size = _HEADER.unpack(_read_exact(fd, _HEADER.size, deadline))
    if size + blob_size > MAX_FRAME:
        raise FrameError(f"frame of {size + blob_size} bytes exceeds the {MAX_FRAME}-byte cap")
    data = _read_exact(fd, size + blob_size, deadline)
    try:
        message = json.loads(data[:size])
    except (ValueError, RecursionError) as exc:
        raise FrameError(f"malformed frame: {exc}") from None
    if not isinstance(message, dict):
        raise FrameError("frame is not a JSON object")
    return message, data[size:]


def wait_readable(fd: int, deadline: float, poller: Any = None) -> bool:
    """True once ``fd`` has data (or was closed), False if ``deadline`` passed first.

    ``poller``: a ``select.poll()`` with ``fd`` registered for reading, to reuse across calls.
    """
    if poller is None:
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    remaining = deadline - time.monotonic()
    return bool(poller.poll(max(remaining, 0.0) * 1000))  # PEP 475: retried after signals, same deadline


def _read_exact(fd: int, size: int, deadline: float | None = None) -> bytes:
    chunks = []
    remaining = size
    while remaining:
        try:
            chunk = os.read(fd, min(remaining, 1 << 20))
        except BlockingIOError:  # only on a non-blocking fd: wait for more, until the deadline
            if deadline is None or not wait_readable(fd, deadline):
                raise FrameTimeout(f"no complete frame before the deadline ({size - remaining} of {size} "
                                   "bytes)") from None
            continue
        if not chunk:
            raise FrameError("the other side closed the pipe")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)

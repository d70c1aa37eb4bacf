"""Watching a policy: one rendered episode as a GIF, and as an MP4 where ffmpeg exists.

The loop renders every scored candidate of an iteration once the iteration's trainings are done (a person
watches them side by side and may rank them), one job each on the executor
(:func:`rewardsmith.jobs.render_media_job`): the policy comes back from the candidate's ``policy.zip`` (and
``vecnormalize.pkl``), so training workers spend no time drawing frames, and the main process never imports
torch. A GIF is cheap (a trained CartPole policy's 464-step episode: 1.0 s to draw, 0.3 s to encode, 88 kB);
the MP4 costs twice that (2.5 s), so only each iteration's best gets one. The episode is the first
of the final evaluation (same seed, deterministic policy), the one the analysis describes first.
"""

from __future__ import annotations

import ctypes.util
import io
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, MutableMapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rewardsmith.rollouts import Policy, record_episodes
from rewardsmith.runs import atomic_write_bytes

if TYPE_CHECKING:
    from rewardsmith.spec import EnvSpec, TaskSpec

__all__ = ["choose_mujoco_gl", "load_policy", "render_episode", "write_gif", "write_mp4"]

GIF_MAX_WIDTH = 240
"""Frames are scaled down to this width: enough to see what the agent does, small enough that every scored
candidate gets one and a round's GIFs sit side by side (a trained CartPole policy's 464-step episode: 88 kB)."""

GIF_MAX_FRAMES = 200
"""Longer episodes keep every k-th frame (and play at fps / k, so the GIF lasts as long as the episode)."""

GIF_COLORS = 64
"""One shared palette for all frames (no flicker); classic-control scenes use a handful of colours."""

MP4_TIMEOUT = 120.0
"""Seconds ffmpeg may take to encode one episode."""

DEFAULT_FPS = 30.0


def load_policy(spec: EnvSpec, task: TaskSpec, policy_dir: Path, device: str = "cpu") -> Policy:
    """The deterministic policy saved by training in ``policy_dir`` (``policy.zip``, ``vecnormalize.pkl``).

    Raises:
        FileNotFoundError: there is no ``policy.zip`` (training ran with ``save_policy=False``).
    """
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from rewardsmith.training import encoded_vec_env, policy_encoder

    policy_file = Path(policy_dir) / "policy.zip"
    if not policy_file.is_file():
        raise FileNotFoundError(f"{policy_file} does not exist")
    model = PPO.load(str(policy_file), device=device)
    encode = policy_encoder(spec)
    vecnorm = None
    stats_file = Path(policy_dir) / "vecnormalize.pkl"
    if stats_file.is_file():
        holder = DummyVecEnv([lambda: spec.make(task)])
        holder = encoded_vec_env(holder, encode) if encode is not None else holder
        vecnorm = VecNormalize.load(str(stats_file), holder)
        vecnorm.training = False
        holder.close()

    def policy(obs: np.ndarray) -> np.ndarray:
        if encode is not None:
            obs = encode(obs)
        if vecnorm is not None:
            obs = vecnorm.normalize_obs(obs)
        actions, _ = model.predict(obs, deterministic=True)
        return actions

    return policy


def choose_mujoco_gl(environ: MutableMapping[str, str] | None = None,
                     find_library: Callable[[str], str | None] = ctypes.util.find_library) -> str | None:
    """Choose MuJoCo's OpenGL backend for off-screen frames; return why none can be used, or None.

    The user's ``MUJOCO_GL`` is kept. Without a display, MuJoCo's default (GLFW) fails or aborts the
    process, so ``egl`` is chosen where libEGL exists, else ``osmesa`` where libOSMesa exists. It must be
    set before the first frame is drawn (Gymnasium reads it when it makes its renderer).
    """
    environ = os.environ if environ is None else environ
    if environ.get("MUJOCO_GL") or environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return None
    for backend, library in (("egl", "EGL"), ("osmesa", "OSMesa")):
        if find_library(library):
            environ["MUJOCO_GL"] = backend
            environ.setdefault("PYOPENGL_PLATFORM", backend)
            return None
    return ("no display and no headless OpenGL for MuJoCo (install libegl1 or libosmesa6, or set MUJOCO_GL): "
            "no rollout GIF")


def render_episode(policy: Policy, spec: EnvSpec, task: TaskSpec, seed: int) -> tuple[list[np.ndarray], float]:
    """The RGB frames of one episode (reset frame first) and the env's frame rate."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame draws off-screen; no display needed
    if spec.extra == "mujoco":
        choose_mujoco_gl()
    _, frames = record_episodes(policy, spec, task, 1, seed, render_first=True)
    frames = [np.asarray(f, dtype=np.uint8) for f in frames if f is not None]
    env = spec.make(task)
    try:
        fps = float(env.metadata.get("render_fps") or DEFAULT_FPS)
    finally:
        env.close()
    return frames, fps


def write_gif(frames: Sequence[np.ndarray], path: Path, fps: float = DEFAULT_FPS) -> Path:
    """Write ``frames`` (H×W×3 uint8) as a looping GIF, scaled and thinned to stay small.

    Raises:
        ValueError: no frames.
    """
    from PIL import Image

    if not frames:
        raise ValueError("no frames to write")
    stride = max(1, math.ceil(len(frames) / GIF_MAX_FRAMES))
    kept = list(frames[::stride])
    height, width = kept[0].shape[:2]
    scale = min(1.0, GIF_MAX_WIDTH / width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    images = [Image.fromarray(np.ascontiguousarray(f[..., :3])).resize(size, Image.Resampling.BILINEAR)
              for f in kept]
    # one palette from the first, middle and last frames side by side
    sample = Image.new("RGB", (size[0] * 3, size[1]))
    for i, image in enumerate((images[0], images[len(images) // 2], images[-1])):
        sample.paste(image, (i * size[0], 0))
    palette = sample.quantize(colors=GIF_COLORS, method=Image.Quantize.MEDIANCUT)
    paletted = [image.quantize(palette=palette, dither=Image.Dither.NONE) for image in images]
    duration = max(20, round(1000.0 * stride / max(fps, 1e-6) / 10) * 10)  # GIFs count in centiseconds
    buffer = io.BytesIO()
    paletted[0].save(buffer, format="GIF", save_all=True, append_images=paletted[1:], duration=duration,
                     loop=0, disposal=1)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


def write_mp4(frames: Sequence[np.ndarray], path: Path, fps: float = DEFAULT_FPS,
              ffmpeg: str | None = None) -> Path | None:
    """Write ``frames`` as an MP4 with ffmpeg; None when ffmpeg is missing or fails."""
    ffmpeg = ffmpeg or shutil.which("ffmpeg")
    if ffmpeg is None or not frames:
        return None
    height, width = frames[0].shape[:2]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".mp4")
    os.close(fd)
    command = [ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{width}x{height}", "-r", f"{fps:g}", "-i", "-", "-an",
               "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-pix_fmt", "yuv420p", tmp]
    data = b"".join(np.ascontiguousarray(f[..., :3], dtype=np.uint8).tobytes() for f in frames)
    try:
        subprocess.run(command, input=data, check=True, capture_output=True, timeout=MP4_TIMEOUT)
        os.replace(tmp, path)
    except (OSError, subprocess.SubprocessError):
        Path(tmp).unlink(missing_ok=True)
        return None
    return path

"""Media: GIFs (and MP4s with ffmpeg) of a saved policy's episode, rendered for every scored candidate."""

from __future__ import annotations

import shutil
import stat

import numpy as np
import pytest
from PIL import Image

from rewardsmith.jobs import render_media_job
from rewardsmith.media import (
    GIF_MAX_FRAMES,
    GIF_MAX_WIDTH,
    write_gif,
    write_mp4,
)
from rewardsmith.runs import CandidatePaths
from rewardsmith.task import TaskRef
from rewardsmith.training import TrainConfig, train


def _frames(n: int, height: int = 400, width: int = 600) -> list[np.ndarray]:
    frames = []
    for i in range(n):
        frame = np.full((height, width, 3), 255, dtype=np.uint8)
        block = max(width // 15, 2)
        x = (i * 3) % (width - block)
        frame[height // 3: 2 * height // 3, x:x + block] = (30, 30, 30)  # a moving block
        frames.append(frame)
    return frames


def test_write_gif_is_a_valid_looping_multi_frame_gif(tmp_path):
    path = write_gif(_frames(60), tmp_path / "rollout.gif", fps=50)
    with Image.open(path) as gif:
        assert gif.format == "GIF"
        assert gif.n_frames > 1
        assert gif.size == (GIF_MAX_WIDTH, round(400 * GIF_MAX_WIDTH / 600))
        assert gif.info["loop"] == 0
        assert gif.info["duration"] == 20
        gif.seek(gif.n_frames - 1)
        assert np.asarray(gif.convert("RGB")).min() < 100  # the block is drawn


def test_long_episodes_are_thinned_and_slowed_to_keep_their_length(tmp_path):
    path = write_gif(_frames(GIF_MAX_FRAMES * 2 + 10, 60, 90), tmp_path / "long.gif", fps=50)
    with Image.open(path) as gif:
        assert 1 < gif.n_frames <= GIF_MAX_FRAMES
        assert gif.size == (90, 60)  # small frames are not scaled up
        assert gif.info["duration"] == 60  # every third frame at 50 fps


def test_write_gif_refuses_no_frames(tmp_path):
    with pytest.raises(ValueError):
        write_gif([], tmp_path / "none.gif")


def test_mp4_is_skipped_without_ffmpeg_and_a_failing_ffmpeg_leaves_no_file(tmp_path, monkeypatch):
    empty = tmp_path / "no-tools"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no ffmpeg on the PATH
    assert write_mp4(_frames(3), tmp_path / "a.mp4") is None
    broken = tmp_path / "ffmpeg"
    broken.write_text("#!/bin/sh\ncat > /dev/null\nexit 1\n")
    broken.chmod(broken.stat().st_mode | stat.S_IEXEC)
    assert write_mp4(_frames(3), tmp_path / "b.mp4", ffmpeg=str(broken)) is None
    assert not list(tmp_path.glob("*.mp4*"))


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_mp4_with_ffmpeg(tmp_path):
    path = write_mp4(_frames(20, 101, 151), tmp_path / "rollout.mp4", fps=25)
    assert path is not None and path.stat().st_size > 0
    assert path.read_bytes()[4:8] == b"ftyp"


def test_render_media_job_renders_the_saved_policy(tmp_path):
    task = TaskRef("cartpole", "x", "balance").resolve()
    paths = CandidatePaths(tmp_path / "iter-00" / "cand-00")
    config = TrainConfig(timesteps=512, checkpoints=1, eval_episodes=1, final_episodes=1)
    trained = train(task, None, config, policy_dir=paths.policy_dir)
    trained.close()
    files = render_media_job(task.ref.to_dict(), paths)
    assert files["gif"] == str(paths.gif)
    assert files["frames"] == len(trained.episodes[0]) + 1  # the reset frame, then one per step
    with Image.open(paths.gif) as gif:
        assert gif.n_frames > 1
    assert (files["mp4"] is not None) == (shutil.which("ffmpeg") is not None)
    paths.mp4.unlink(missing_ok=True)
    gif_only = render_media_job(task.ref.to_dict(), paths, mp4=False)  # what a round's other candidates get
    assert gif_only["gif"] == str(paths.gif) and gif_only["mp4"] is None and not paths.mp4.exists()


def test_render_media_job_without_a_policy_says_why(tmp_path):
    paths = CandidatePaths(tmp_path / "cand")
    files = render_media_job(TaskRef("cartpole", "x").to_dict(), paths)
    assert files["gif"] is None and "policy.zip" in files["reason"]


def test_a_search_renders_every_scored_candidate(tmp_path, tiny_search):
    from dataclasses import replace

    from rewardsmith.designer import BuiltinDesigner
    from rewardsmith.loop import run_search
    from rewardsmith.runs import RunDir

    ref = TaskRef("cartpole", "Keep the pole balanced upright for as long as possible.", "balance")
    run = RunDir.create(tmp_path, "cartpole", ref.text)
    state = run_search(run, ref, BuiltinDesigner(), replace(tiny_search, media=True))
    written = {e["id"]: e for e in run.events() if e["kind"] == "media_written"}
    scored = [c for c in state.candidates.values() if c.status == "scored"]
    assert len(scored) > tiny_search.iterations  # more than one a round: not only each round's best
    assert set(written) == {c.id for c in scored}
    for cand in scored:
        paths = run.candidate(cand.iteration, cand.index)
        assert written[cand.id]["gif"] == str(paths.gif)
        with Image.open(paths.gif) as gif:
            assert gif.n_frames > 1 and gif.size[0] <= GIF_MAX_WIDTH
    gifs = sorted(run.root.glob("iter-*/cand-*/rollout.gif"))
    assert len(gifs) == len(scored)

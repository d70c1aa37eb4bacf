"""The bundled MuJoCo specs beyond the shared spec tests: causes, fitness functions, PPO settings, headless GIFs."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from rewardsmith.media import choose_mujoco_gl

# ---------------------------------------------------------------------------- the GL backend (no mujoco needed)


def test_mujoco_gl_keeps_the_users_choice_and_a_display():
    for environ in ({"MUJOCO_GL": "osmesa"}, {"DISPLAY": ":0"}):
        before = dict(environ)
        assert choose_mujoco_gl(environ, lambda name: "lib.so") is None
        assert environ == before


def test_mujoco_gl_prefers_egl_then_osmesa_headless():
    environ: dict[str, str] = {}
    assert choose_mujoco_gl(environ, lambda name: "libEGL.so.1") is None
    assert environ["MUJOCO_GL"] == "egl"
    environ = {}
    assert choose_mujoco_gl(environ, lambda name: "libOSMesa.so" if name == "OSMesa" else None) is None
    assert environ["MUJOCO_GL"] == "osmesa"


def test_without_any_headless_gl_it_says_why_in_one_line():
    environ: dict[str, str] = {}
    reason = choose_mujoco_gl(environ, lambda name: None)
    assert reason is not None and "\n" not in reason and "libegl1" in reason
    assert "MUJOCO_GL" not in environ


# ---------------------------------------------------------------------------------------------- the specs

mujoco = pytest.importorskip("mujoco")

from rewardsmith.episode import Episode, NamedArrays, NamedValues  # noqa: E402
from rewardsmith.rollouts import record_episodes  # noqa: E402
from rewardsmith.spec import load_spec  # noqa: E402

NAMES = ("hopper", "halfcheetah", "walker2d", "ant")


@pytest.mark.parametrize("name", NAMES)
def test_mujoco_specs_need_the_extra_and_train_whole_zoo_rollouts(name):
    spec = load_spec(name)
    assert spec.extra == "mujoco"
    budget = spec.default_task.budget(spec.ppo)
    assert budget == spec.ppo.timesteps  # the bundled budget is whole rollouts as written
    assert budget // spec.ppo.rollout(budget) >= 10
    assert spec.ppo.normalize_obs and spec.ppo.normalize_reward and spec.ppo.n_envs == 1


def test_zoo_policy_settings_reach_sb3():
    import torch.nn as nn

    kwargs = load_spec("hopper").ppo.sb3_kwargs(204_800)
    assert kwargs["policy_kwargs"] == {"log_std_init": -2.0, "ortho_init": False, "activation_fn": nn.ReLU,
                                       "net_arch": {"pi": [256, 256], "vf": [256, 256]}}
    assert kwargs["n_steps"] == 512 and kwargs["batch_size"] == 32 and kwargs["gamma"] == 0.999


def _cause(name: str, **values: float) -> str:
    spec = load_spec(name)
    row = dict.fromkeys(spec.field_names, 0.0)
    row.update(values)
    return spec.termination_cause(NamedValues(spec.field_names, [row[n] for n in spec.field_names]), {}, False)


def test_unhealthy_states_are_named():
    assert _cause("hopper", torso_height=0.6) == "fell"
    assert _cause("hopper", torso_height=1.2, torso_angle=-0.25) == "tipped_over"
    assert _cause("hopper", torso_height=1.2, leg_angular_velocity=150.0) == "unstable"
    assert _cause("walker2d", torso_height=0.7) == "fell"
    assert _cause("walker2d", torso_height=2.1) == "jumped"
    assert _cause("walker2d", torso_height=1.2, torso_angle=1.2) == "tipped_over"
    assert _cause("ant", torso_height=0.1) == "fell"
    assert _cause("ant", torso_height=1.1) == "jumped"
    assert load_spec("halfcheetah").terminations == ()


@pytest.mark.parametrize("name", ["hopper", "walker2d"])
def test_random_play_ends_for_a_named_reason(name):
    spec = load_spec(name)
    task = spec.default_task
    space = spec.make(task).action_space
    space.seed(0)
    episodes, _ = record_episodes(lambda b: np.asarray([space.sample() for _ in b]), spec, task, 3, seed=0)
    causes = {c.name for c in spec.terminations}
    for episode in episodes:
        assert episode.terminated and episode.cause in causes
        assert {"x_position", "x_velocity", "reward_forward"} <= set(episode.infos[-1])


def _episode(name: str, rows: list[dict[str, float]], infos: list[dict[str, float]]) -> Episode:
    spec = load_spec(name)
    matrix = [[row.get(n, 0.0) for n in spec.field_names] for row in rows]
    steps = len(rows) - 1
    return Episode(obs=NamedArrays(spec.field_names, np.asarray(matrix, dtype=np.float64)), actions=np.zeros(steps),
                   env_rewards=np.zeros(steps), terminated=False, truncated=True, infos=infos)


def test_hop_in_place_counts_upright_airborne_steps_near_the_start():
    fitness = load_spec("hopper").task("hop-in-place").fitness
    rows = [{"torso_height": 1.25}, {"torso_height": 1.4}, {"torso_height": 1.4, "torso_angle": 0.15},
            {"torso_height": 1.3}, {"torso_height": 1.5}, {"torso_height": 1.5}]
    infos = [{"x_position": 0.1}, {"x_position": 0.1}, {"x_position": 0.1}, {"x_position": -0.2},
             {"x_position": 0.7}]
    assert fitness(_episode("hopper", rows, infos)) == 2.0  # step 1 and step 4: tilted, low, too far


def test_run_backward_is_the_distance_towards_minus_x():
    fitness = load_spec("halfcheetah").task("run-backward").fitness
    assert fitness(_episode("halfcheetah", [{}] * 3, [{"x_position": -1.0}, {"x_position": -3.5}])) == 3.5


def test_walk_slow_counts_steps_on_pace():
    fitness = load_spec("walker2d").task("walk-slow").fitness
    speeds = [0.0, 0.6, 1.0, 1.5, 1.6, 2.5]
    assert fitness(_episode("walker2d", [{}] * 7, [{"x_velocity": v} for v in speeds])) == 3.0


def test_turn_in_place_sums_the_heading_turned_near_the_start():
    fitness = load_spec("ant").task("turn-in-place").fitness
    headings = np.linspace(0.0, 3 * math.pi, 31)  # one and a half turns counter-clockwise, 0.1 pi a step
    rows = [{"torso_orientation_w": math.cos(h / 2), "torso_orientation_z": math.sin(h / 2)} for h in headings]
    near = [{"distance_from_origin": 0.5}] * 30
    assert fitness(_episode("ant", rows, near)) == pytest.approx(3 * math.pi)
    far = near[:20] + [{"distance_from_origin": 1.5}] * 10
    assert fitness(_episode("ant", rows, far)) == pytest.approx(2 * math.pi)
    clockwise = [{"torso_orientation_w": math.cos(-h / 2), "torso_orientation_z": math.sin(-h / 2)}
                 for h in headings]
    assert fitness(_episode("ant", clockwise, near)) == pytest.approx(-3 * math.pi)


def test_a_reward_reads_the_envs_info_keys(tmp_path):
    """The reference rewards read info["x_velocity"] etc.: the values reward code sees are the env's own."""
    from rewardsmith.rollouts import annotate_components
    from rewardsmith.sandbox import RewardSandbox, SandboxLimits

    spec = load_spec("halfcheetah")
    task = spec.task("run-backward")
    space = spec.make(task).action_space
    space.seed(0)
    episodes, _ = record_episodes(lambda b: np.asarray([space.sample() for _ in b]), spec, task, 1, seed=0)
    reads_info = ("def compute_reward(obs, action, next_obs, info):\n"
                  "    return info['x_velocity'], {'speed': info['x_velocity']}\n")
    with RewardSandbox(spec.field_index, SandboxLimits()) as sandbox:
        assert sandbox.load(reads_info).ok
        annotate_components(episodes, sandbox)
    speeds = [info["x_velocity"] for info in episodes[0].infos]
    assert np.allclose(episodes[0].components["speed"], speeds)


def test_a_mujoco_gif_renders_headless(tmp_path):
    """A saved Hopper policy renders to a GIF in a fresh process with no display and no MUJOCO_GL set."""
    from rewardsmith.runs import CandidatePaths
    from rewardsmith.task import TaskRef
    from rewardsmith.training import TrainConfig, train

    ref = TaskRef("hopper", "hop", "hop-forward")
    task = ref.resolve()
    paths = CandidatePaths(tmp_path / "cand")
    config = TrainConfig(timesteps=512, checkpoints=1, eval_episodes=1, final_episodes=1, device="cpu")
    train(task, None, config, policy_dir=paths.policy_dir).close()
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY", "WAYLAND_DISPLAY",
                                                            "PYOPENGL_PLATFORM")}
    script = ("import json, sys\nfrom pathlib import Path\nfrom rewardsmith.jobs import render_media_job\n"
              "from rewardsmith.runs import CandidatePaths\n"
              f"files = render_media_job({ref.to_dict()!r}, CandidatePaths(Path({str(paths.root)!r})))\n"
              "print(json.dumps(files))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    import json

    files = json.loads(result.stdout.strip().splitlines()[-1])
    if files["gif"] is None:  # a machine without EGL or OSMesa: the run says why, in one line
        assert "\n" not in files["reason"] and files["reason"]
    else:
        assert files["frames"] > 1 and paths.gif.is_file()

"""Every way of naming an env, from another working directory, with no PYTHONPATH.

Each route goes through the installed ``rewardsmith`` command (not ``python -m``, which would put the
current directory on sys.path) with an environment holding only PATH and HOME: ``check``, a short
``run``, ``export`` whose ``make_env()`` builds and steps the env without rewardsmith, then ``show``,
``report`` and ``export`` again after the user's module has moved away (they read the run's records).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rewardsmith.envref import absolute_env_reference, parse_env_kwargs
from rewardsmith.errors import SpecError, UnknownEnvError, UsageError
from rewardsmith.spec import load_spec

COMMAND = str(Path(sys.executable).parent / "rewardsmith")

ROVER = '''
import gymnasium as gym
import numpy as np


class RoverEnv(gym.Env):
    """A rover on a line that should reach x = goal.

    ## Observation Space

    | Num | Observation | Min | Max | Unit |
    |-----|-------------|-----|-----|------|
    | 0   | position    | -10 | 10  | m    |
    | 1   | velocity    | -5  | 5   | m/s  |
    """

    def __init__(self, goal=3.0, render_mode=None):
        self.goal = goal
        self.observation_space = gym.spaces.Box(np.array([-10, -5], np.float32), np.array([10, 5], np.float32))
        self.action_space = gym.spaces.Discrete(3)
        self.state = np.zeros(2, np.float32)
        self.t = 0

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.state = np.array([self.np_random.uniform(-1, 1), 0.0], np.float32)
        self.t = 0
        return self.state.copy(), {}

    def step(self, action):
        self.t += 1
        velocity = float(np.clip(self.state[1] + 0.1 * (int(action) - 1), -5, 5))
        position = float(np.clip(self.state[0] + velocity, -10, 10))
        self.state = np.array([position, velocity], np.float32)
        reached = abs(position - self.goal) < 0.5
        return self.state.copy(), -abs(position - self.goal), reached, self.t >= 100, {"goal": self.goal}


def make_rover(**kwargs):
    return RoverEnv(**kwargs)
'''

REWARD = '''
def compute_reward(obs, action, next_obs, info):
    close = -abs(next_obs.position - info["goal"])
    return close, {"close": close}
'''

SPEC = '''
import gymnasium as gym

from rover import RoverEnv  # a module beside this spec file
from rewardsmith.spec import EnvSpec, Field, TaskSpec, env_reward_fitness

gym.register("SpecRover-v0", entry_point=RoverEnv, max_episode_steps=80)

STOP_AT = 60


class StopEarly(gym.Wrapper):
    """Ends an episode after STOP_AT steps."""

    def reset(self, **kwargs):
        self.steps = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        self.steps += 1
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info, stopped_early=self.steps >= STOP_AT)
        return obs, reward, terminated, truncated or self.steps >= STOP_AT, info


SPEC = EnvSpec(
    name="spec-rover",
    gym_id="SpecRover-v0",
    description="A rover on a line.",
    fields=(Field("position", 0, "where it is", "m"), Field("velocity", 1, "how fast", "m/s")),
    actions="0 brakes, 1 coasts, 2 accelerates",
    reward_doc="minus the distance to the goal",
    terminations=(),
    tasks=(
        TaskSpec("reach", "Reach the goal.", env_reward_fitness, "the env's return", 0.0, default=True),
        TaskSpec("reach-quickly", "Reach the goal within 60 steps.", env_reward_fitness, "the env's return", 0.0,
                 wrappers=(StopEarly,)),
    ),
)
'''


def _rewardsmith(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", str(cwd)),
           "COLUMNS": "200", "PYGAME_HIDE_SUPPORT_PROMPT": "1"}
    result = subprocess.run([COMMAND, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def _ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def _make_env_outside_rewardsmith(module: Path, cwd: Path, calls: str) -> str:
    """Import the exported module with rewardsmith blocked and no PYTHONPATH; run ``calls`` with its namespace ``ns``."""
    script = ("import sys; sys.modules['rewardsmith'] = None\n"
              f"import runpy; ns = runpy.run_path({str(module)!r})\n" + textwrap.dedent(calls))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=cwd,
                            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    assert result.returncode == 0, result.stderr
    return result.stdout


STEP_IT = """
env = ns["make_env"]()
obs, info = env.reset(seed=0)
obs, reward, terminated, truncated, info = env.step(2)
assert type(reward) is float and isinstance(info["reward_components"], dict) and "env_reward" in info, info
print("goal", env.unwrapped.goal)
"""


def _route(tmp_path: Path, env_args: list[str], cwd: Path, user_files: list[Path], goal: float,
           more_calls: str = "") -> tuple[Path, str]:
    """check, run, export + make_env, then show/report/export with the user's files moved away; the run dir."""
    reward = tmp_path / "reward.py"
    reward.write_text(REWARD)
    assert "accepted" in _ok(_rewardsmith("check", str(reward), *env_args, cwd=cwd))
    out = tmp_path / "runs"
    _ok(_rewardsmith("run", "reach the goal", *env_args, "--iterations", "1", "--samples", "1", "--timesteps",
                     "1024", "--no-media", "--designer", "builtin", "--out", str(out), cwd=cwd))
    (run_dir,) = out.iterdir()
    recorded = json.loads((run_dir / "run.json").read_text())
    assert all(Path(p).is_absolute() for p in recorded["task"]["env_paths"])

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    exported = tmp_path / "exported.py"
    _ok(_rewardsmith("export", str(run_dir), "-o", str(exported), cwd=elsewhere))
    header = exported.read_text().split("\n\n")[0]
    assert "env = make_env()" in header
    printed = _make_env_outside_rewardsmith(exported, elsewhere, STEP_IT + textwrap.dedent(more_calls))
    assert f"goal {goal}" in printed

    moved = tmp_path / "moved"
    moved.mkdir()
    for path in user_files:
        shutil.move(str(path), moved / path.name)
    overview = _ok(_rewardsmith("show", str(run_dir), cwd=elsewhere))
    assert "00-00" in overview and "reach the goal" in overview
    _ok(_rewardsmith("report", str(run_dir), "-o", str(tmp_path / "report.html"), cwd=elsewhere))
    assert "reach the goal" in (tmp_path / "report.html").read_text()
    assert "def make_env" in _ok(_rewardsmith("export", str(run_dir), cwd=elsewhere))
    return run_dir, printed


@pytest.mark.slow
def test_a_class_in_a_file_named_by_path_from_another_directory(tmp_path):
    project = tmp_path / "project" / "sim"
    project.mkdir(parents=True)
    (project / "rover.py").write_text(ROVER)
    cwd = tmp_path / "work"
    cwd.mkdir()
    run_dir, _ = _route(tmp_path, ["--env", "../project/sim/rover.py:RoverEnv", "--env-kwargs", "goal=4.5"], cwd,
                        [project / "rover.py"], 4.5)
    task = json.loads((run_dir / "run.json").read_text())["task"]
    assert task["env"] == f"{project.resolve() / 'rover.py'}:RoverEnv"
    assert task["env_kwargs"] == {"goal": 4.5}


@pytest.mark.slow
def test_a_factory_in_a_module_of_the_current_directory(tmp_path):
    cwd = tmp_path / "project"
    (cwd / "rover_pkg").mkdir(parents=True)
    (cwd / "rover_pkg" / "__init__.py").write_text("")
    (cwd / "rover_pkg" / "envs.py").write_text(ROVER)
    _route(tmp_path, ["--env", "rover_pkg.envs:make_rover", "--env-kwargs", '{"goal": 2.5}'], cwd,
           [cwd / "rover_pkg"], 2.5)


@pytest.mark.slow
def test_a_gymnasium_id_with_the_module_that_registers_it(tmp_path):
    cwd = tmp_path / "project"
    (cwd / "rover_reg").mkdir(parents=True)
    (cwd / "rover_reg" / "envs.py").write_text(ROVER)
    (cwd / "rover_reg" / "__init__.py").write_text(
        "import gymnasium as gym\n"
        "gym.register('RegRover-v0', entry_point='rover_reg.envs:RoverEnv', max_episode_steps=90, kwargs={'goal': 1.5})\n")
    _route(tmp_path, ["--env", "rover_reg:RegRover-v0"], cwd, [cwd / "rover_reg"], 1.5)


@pytest.mark.slow
def test_a_spec_file_importing_a_module_beside_it_with_a_task_wrapper(tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "rover.py").write_text(ROVER)
    (specs / "rover_spec.py").write_text(SPEC)
    cwd = tmp_path / "work"
    cwd.mkdir()
    # make_env applies the task's wrapper, copied into the export: rewardsmith is blocked where it runs.
    run_dir, printed = _route(tmp_path, ["--env", str(Path("..") / "specs" / "rover_spec.py"), "--task",
                                         "reach-quickly", "--env-kwargs", "goal=3.5"], cwd,
                              [specs / "rover.py", specs / "rover_spec.py"], 3.5, """
        env.reset(seed=0)
        steps, done = 0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(1)
            steps += 1
            done = terminated or truncated
        print("wrapped", type(env.env).__name__, "stopped_early" in info, steps <= 60)
    """)
    assert "wrapped StopEarly True True" in printed
    assert json.loads((run_dir / "run.json").read_text())["env"]["build"]["id"] == "SpecRover-v0"


@pytest.mark.slow
def test_a_bundled_name_with_env_kwargs_from_another_directory(tmp_path):
    out = tmp_path / "runs"
    _ok(_rewardsmith("run", "balance", "--env", "cartpole", "--env-kwargs", "sutton_barto_reward=true", "-n", "1",
                     "-k", "1", "--timesteps", "1024", "--no-media", "--designer", "builtin", "--out", str(out),
                     cwd=tmp_path))
    (run_dir,) = out.iterdir()
    exported = tmp_path / "exported.py"
    _ok(_rewardsmith("export", str(run_dir), "-o", str(exported), cwd=tmp_path))
    assert "sutton_barto_reward=True" in exported.read_text().split("\n\n")[0]
    printed = _make_env_outside_rewardsmith(exported, tmp_path, """
        env = ns["make_env"]()
        env.reset(seed=0)
        print("kwargs", env.unwrapped.spec.kwargs)
        print(env.unwrapped._sutton_barto_reward)
    """)
    assert printed.strip().endswith("True")


# ------------------------------------------------------------------------------ naming, in process


def test_env_kwargs_take_json_objects_and_key_values():
    assert parse_env_kwargs(['{"continuous": true, "gravity": -9.0}', "wind=2.5", "mode=fast", "n=[1, 2]"]) == {
        "continuous": True, "gravity": -9.0, "wind": 2.5, "mode": "fast", "n": [1, 2]}
    for bad in ("continuous", "{not json", "[1, 2]", "1x=2"):
        with pytest.raises(UsageError, match="--env-kwargs"):
            parse_env_kwargs([bad])


def test_references_become_absolute_with_the_folders_they_import_from(tmp_path):
    assert absolute_env_reference("cartpole", tmp_path) == ("cartpole", ())
    assert absolute_env_reference("LunarLander-v3", tmp_path) == ("LunarLander-v3", ())
    name, paths = absolute_env_reference("sub/envs.py:RoverEnv", tmp_path)
    assert name == f"{tmp_path.resolve() / 'sub' / 'envs.py'}:RoverEnv"
    assert paths == (str(tmp_path.resolve() / "sub"), str(tmp_path.resolve()))
    assert absolute_env_reference("my_pkg.envs:make_rover", tmp_path) == ("my_pkg.envs:make_rover",
                                                                            (str(tmp_path.resolve()),))
    assert absolute_env_reference("specs/my_spec.py", tmp_path)[1][0] == str(tmp_path.resolve() / "specs")


def test_a_bundled_envs_other_ids_and_kwargs_keep_its_spec():
    continuous = load_spec("LunarLanderContinuous-v3")
    assert (continuous.source, continuous.name, continuous.gym_id) == ("bundled", "lunarlander",
                                                                        "LunarLanderContinuous-v3")
    by_kwargs = load_spec("LunarLander-v3", {"continuous": True})
    assert by_kwargs.source == "bundled" and by_kwargs.make_kwargs == {"continuous": True}
    assert load_spec("lunarlander", {"continuous": True}).make(None).action_space.shape == (2,)


def test_kwargs_that_break_a_named_spec_fail_in_one_line_and_unknown_references_name_the_problem(tmp_path):
    with pytest.raises(SpecError, match="could not be made"):
        load_spec("cartpole", {"no_such_argument": 1})
    with pytest.raises(UnknownEnvError, match="does not exist"):
        load_spec(f"{tmp_path / 'missing.py'}:RoverEnv")
    (tmp_path / "empty_envs.py").write_text("X = 1\n")
    with pytest.raises(UnknownEnvError, match="registers no Gymnasium id named 'Nope-v0'"):
        load_spec(f"{tmp_path / 'empty_envs.py'}:Nope-v0")
    with pytest.raises(UnknownEnvError, match="cannot import 'no_such_module_xyz'"):
        load_spec("no_such_module_xyz:Thing", paths=(str(tmp_path),))


def test_the_export_of_a_bundled_task_wrapper_is_standalone(tmp_path):
    from rewardsmith.envref import env_build
    from rewardsmith.export import render_export

    spec = load_spec("acrobot")
    task = spec.task("keep-above")
    build = env_build(spec.gym_id, spec.make_kwargs, task.wrappers, ())
    module = tmp_path / "exported.py"
    module.write_text(render_export("def compute_reward(obs, action, next_obs, info):\n    return 1.0\n", spec,
                                    {"task": "keep above", "env_build": build}))
    printed = _make_env_outside_rewardsmith(module, tmp_path, """
        env = ns["make_env"]()
        env.reset(seed=0)
        print(type(env.env).__name__)
        ended = [env.step(1)[2] for _ in range(300)]
        print("terminated", any(ended))
    """)
    assert printed.split() == ["IgnoreTermination", "terminated", "False"]
    assert "envs/acrobot.py" not in module.read_text().split("def _rs_task_wrappers")[1]

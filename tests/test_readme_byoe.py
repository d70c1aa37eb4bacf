"""README "Bring your own environment": its files and commands, run as a user would.

The worked example's files (``# rover/rover.py`` and the others, named on each code block's first line)
are written under a fresh HOME, and the section's bash commands run there through the installed
``rewardsmith`` command with only PATH and HOME set (plus PYTHONPATH only where that command would
import another checkout than the one under test). Budgets are shrunk; where training lands is never asserted.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import rewardsmith

ROOT = Path(__file__).resolve().parents[1]
COMMAND = str(Path(sys.executable).parent / "rewardsmith")
SHRINK = {"--iterations": "1", "--samples": "1", "--timesteps": "1024"}


def _section(title: str) -> str:
    readme = (ROOT / "README.md").read_text()
    assert readme.count(f"\n### {title}\n") == 1, title
    return readme.split(f"\n### {title}\n", 1)[1].split("\n### ", 1)[0]


def _files(text: str) -> dict[str, str]:
    """The python blocks whose first line names their file: ``# rover/rover.py``."""
    found = {}
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        first, _, _ = block.partition("\n")
        named = re.fullmatch(r"# ([\w/]+\.py)", first.strip())
        if named:
            found[named.group(1)] = block
    return found


def _commands(text: str) -> list[list[str]]:
    """The bash blocks' commands, continuation lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(words)
    return commands


def _environment(home: Path) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "COLUMNS": "200"}
    probe = subprocess.run([str(Path(COMMAND).with_name("python")), "-c", "import rewardsmith; print(rewardsmith.__file__)"],
                           capture_output=True, text=True, cwd=home, env=env, timeout=60, check=True)
    if Path(probe.stdout.strip()).resolve() != Path(rewardsmith.__file__).resolve():
        env["PYTHONPATH"] = str(Path(rewardsmith.__file__).resolve().parents[1])  # the checkout under test
    return env


def _run_readme(words: list[str], home: Path, env: dict[str, str]) -> str:
    """One README command, with ``runs/<run>`` the newest run and a small budget."""
    if words[0] == "cd":
        assert words[1:] == ["~"]
        return ""
    runs = sorted((home / "runs").glob("*"), key=lambda p: p.stat().st_mtime) if (home / "runs").is_dir() else []
    words = [str(runs[-1]) if w == "runs/<run>" else w for w in words]
    words = [SHRINK.get(words[i - 1], w) if i else w for i, w in enumerate(words)]
    if words[:2] == ["rewardsmith", "run"]:
        words.append("--no-media")
    program = {"rewardsmith": COMMAND, "python": sys.executable}[words[0]]
    result = subprocess.run([program, *words[1:]], capture_output=True, text=True, cwd=home, env=env, timeout=600)
    assert result.returncode == 0, (words, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result.stdout


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A HOME laid out as the README says: ~/reach.py, ~/rover/rover.py, ~/rover/rover_spec.py."""
    files = {**_files(_section("A worked example: your own env class")),
             **_files(_section("The same env as a spec file, with a novel task"))}
    assert set(files) == {"rover/rover.py", "reach.py", "rover/rover_spec.py"}
    for name, source in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(source)
    return tmp_path


def test_the_section_is_one_with_its_parts_in_order():
    readme = (ROOT / "README.md").read_text()
    assert readme.count("\n## Bring your own environment\n") == 1
    section = readme.split("\n## Bring your own environment\n", 1)[1].split("\n## ", 1)[0]
    parts = re.findall(r"^### (.+)$", section, re.M)
    assert parts == ["Naming an env", "A worked example: your own env class",
                     "The same env as a spec file, with a novel task", "Any observation space", "MuJoCo robots"]
    assert 'pip install -e ".[mujoco]"' in _section("MuJoCo robots")
    assert "**MuJoCo locomotion.**" not in readme


def test_describe_names_the_dict_fields_and_the_spec_file_its_novel_task(home: Path):
    env = _environment(home)
    worked = _commands(_section("A worked example: your own env class"))
    described = _run_readme(next(w for w in worked if w[:2] == ["rewardsmith", "describe"]), home, env)
    for name in ("battery", "position", "velocity"):
        assert re.search(rf"^\s*\[\d\] {name}:", described, re.M), (name, described)
    spec = _commands(_section("The same env as a spec file, with a novel task"))
    described = _run_readme(next(w for w in spec if w[:2] == ["rewardsmith", "describe"]), home, env)
    assert "[1] position (m): where the rover is on the line" in described
    assert "battery_flat: the battery is empty" in described
    prompts = _run_readme(next(w for w in spec if w[:2] == ["rewardsmith", "prompts"]), home, env)
    assert "Drive to x = -2 and stay parked there" in prompts
    assert "The task counts as solved when the mean fitness reaches 100." in prompts


@pytest.mark.slow
def test_the_worked_example_runs_start_to_finish(home: Path):
    env = _environment(home)
    commands = _commands(_section("A worked example: your own env class"))
    assert [w[:2] for w in commands] == [["cd", "~"], ["rewardsmith", "describe"], ["rewardsmith", "check"],
                                         ["rewardsmith", "run"], ["rewardsmith", "export"], ["python", "-c"],
                                         ["rewardsmith", "show"]]
    outputs = [_run_readme(words, home, env) for words in commands]
    assert "close" in outputs[2] and "thrift" in outputs[2]
    assert (home / "rover_reward.py").is_file()
    assert "'battery': array(" in outputs[5]  # make_env() steps the Dict-observation rover


@pytest.mark.slow
def test_the_spec_file_example_runs_the_novel_task(home: Path):
    env = _environment(home)
    commands = _commands(_section("The same env as a spec file, with a novel task"))
    assert ["rewardsmith", "run", "--env", "rover/rover_spec.py", "--task", "park"] in [w[:6] for w in commands]
    for words in commands:
        _run_readme(words, home, env)
    runs = list((home / "runs").iterdir())
    assert len(runs) == 1
    assert '"park"' in (runs[0] / "run.json").read_text()

"""Packaging: the public API, and prompts/env specs found from an installed wheel, not only a checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import rewardsmith

ROOT = Path(__file__).resolve().parents[1]


def test_public_api_is_pinned():
    assert rewardsmith.__all__ == [
        "Candidate", "Critic", "EnvSpec", "Episode", "Issue", "RewardSandbox", "RewardsmithError", "RunDir",
        "SearchConfig", "TaskRef", "TaskSpec", "TrainConfig", "TrainingResult", "Verdict", "check",
        "load_spec", "resume_search", "run_search", "train",
    ]
    for name in rewardsmith.__all__:
        assert getattr(rewardsmith, name) is not None


def test_importing_the_package_does_not_import_torch():
    code = "import sys, rewardsmith, rewardsmith.sandbox.worker; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
                             str(out), str(ROOT)], capture_output=True, text=True, timeout=300)
    if result.returncode != 0:  # no hatchling in this environment: build it isolated
        result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(ROOT)],
                                capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return next(out.glob("rewardsmith-*.whl"))


def test_the_wheel_carries_prompts_and_env_specs(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for prompt in (ROOT / "prompts").glob("*.j2"):
        assert f"rewardsmith/_bundled/prompts/{prompt.name}" in names
    for spec in (ROOT / "envs").glob("*.py"):
        assert f"rewardsmith/_bundled/envs/{spec.name}" in names


def test_an_installed_wheel_finds_its_specs_and_prompts(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import rewardsmith.resources as r, rewardsmith.spec as s\n"
        "print(r.bundled_dir('envs'))\n"
        "print(s.load_spec('cartpole').describe().splitlines()[0])\n"
    )
    # -I: ignore the checkout and any editable install; only the extracted wheel and site-packages deps.
    result = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r})\n" + code],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(str(site)) and lines[0].endswith("_bundled/envs")
    assert lines[1] == "Environment: CartPole-v1 (rewardsmith name: cartpole)"

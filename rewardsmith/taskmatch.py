"""Which of an env's tasks a free-text sentence asks for, by a score a person can follow.

The built-in designer does not read the sentence, so before it runs the sentence is matched against the spec's
tasks (each task's name and description). Both texts are normalised the same way: lowercase words, a few
phrases and irregular forms rewritten (``-x`` → left, ``swung`` → swing, ``counter-clockwise`` →
counterclockwise), a light suffix stemmer (``holding``, ``holds`` → hold), and numbers kept as signed values.

- A task's *distinctive* words are those of its text that not every task of the env has: words all tasks share
  (``pole`` on CartPole) cannot tell them apart. A task's score is the number of the sentence's words among its
  distinctive ones.
- A task *contradicts* the sentence when the sentence says a direction or speed the task does not and the task
  says its opposite (``left`` against a task that says only ``right``), or when the sentence gives a number the
  task does not while the task gives others (a 20 degree tilt against a task at 15): such a task is never chosen.
- Its *coverage* is the share of the sentence's words (stop words aside) that its text, or the env's name, holds.

A match is *clear* when the best task that does not contradict the sentence scores at least
:data:`MIN_SCORE`, at least twice the next one, and covers at least :data:`MIN_COVERAGE` of the sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rewardsmith.spec import EnvSpec, TaskSpec

__all__ = ["MIN_COVERAGE", "MIN_SCORE", "TaskMatch", "TaskScore", "match_task", "words"]

MIN_SCORE = 1
"""Distinctive words the best task must share with the sentence."""
MIN_COVERAGE = 2 / 3
"""Share of the sentence's words the best task's text must hold: a sentence that asks for more than the task
measures (swing up *with as little torque as possible*) is not that task."""

_PHRASES = [  # (pattern, replacement), applied in order to the lowercased text
    (r"counter[\s-]*clockwise|anti[\s-]*clockwise", " counterclockwise "),
    (r"(?<![\w.])-\s*x\b|\bnegative\s+x\b", " left "),
    (r"(?<![\w.])\+\s*x\b|\bpositive\s+x\b", " right "),
    (r"°|\bdeg\b", " degree "),
]
_SAME = {  # irregular forms and words that name the same thing in these tasks
    "swung": "swing", "held": "hold", "kept": "keep", "ran": "run", "drove": "drive", "driven": "drive",
    "center": "centre", "middle": "centre", "hilltop": "hill", "summit": "hill", "peak": "hill",
    "lean": "tilt", "quick": "fast", "rapid": "fast", "upward": "up", "downward": "down",
}
_OPPOSITE = {"left": "right", "forward": "backward", "up": "down", "fast": "slow",
             "clockwise": "counterclockwise"}
_OPPOSITE.update({b: a for a, b in list(_OPPOSITE.items())})
_STOP = frozenset(
    "a an the to of on in at as and or for with it its is be by from into onto than then this that while so "
    "possible much many long can could should would please make get let try do does all any toward towards".split())
_TOKEN = re.compile(r"[+-]?\d+(?:\.\d+)?|[a-z]+")


def _stem(word: str) -> str:
    """A light suffix stemmer: holding, holds, held → hold; balanced, balance → balanc; hopped → hop."""
    word = _SAME.get(word, word)
    for suffix in ("ing", "ed", "ly", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            word = word[: -len(suffix)]
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]  # hopp → hop, runn → run
            break
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return _SAME.get(word, word)


def words(text: str) -> list[str]:
    """``text`` as normalised tokens: stemmed words without stop words, and numbers as ``#value`` (``#1``,
    ``#-0.9``: ``+1.0`` and ``1`` are the same number)."""
    text = text.lower()
    for pattern, replacement in _PHRASES:
        text = re.sub(pattern, replacement, text)
    tokens = []
    for token in _TOKEN.findall(text):
        if token[0].isdigit() or token[0] in "+-":
            tokens.append(f"#{float(token):g}")
        elif token not in _STOP and len(token) > 1:
            tokens.append(_stem(token))
    return tokens


def _task_words(task: TaskSpec) -> set[str]:
    return set(words(task.name.replace("-", " ").replace("_", " ") + " " + task.description))


@dataclass(frozen=True)
class TaskScore:
    """How one task compares with the sentence."""

    task: str
    shared: tuple[str, ...]
    """The sentence's words among this task's distinctive words (its score is how many)."""
    coverage: float
    """The share of the sentence's words this task's text (or the env's name) holds."""
    conflicts: tuple[str, ...]
    """What in the sentence this task contradicts (``left≠right``, ``#20``); any rules the task out."""

    @property
    def score(self) -> int:
        return len(self.shared)


@dataclass(frozen=True)
class TaskMatch:
    """Every task's score, best first, and the task the sentence clearly asks for (None when none does)."""

    scores: tuple[TaskScore, ...]
    chosen: str | None


def _conflicts(sentence: set[str], task_words: set[str]) -> tuple[str, ...]:
    found = [f"{w}≠{_OPPOSITE[w]}" for w in sorted(sentence)
             if w in _OPPOSITE and w not in task_words and _OPPOSITE[w] in task_words]
    task_numbers = {w for w in task_words if w.startswith("#")}
    if task_numbers:
        found += [w for w in sorted(sentence) if w.startswith("#") and w not in task_numbers]
    return tuple(found)


def match_task(text: str, spec: EnvSpec) -> TaskMatch:
    """Score ``text`` against each of ``spec``'s tasks; choose one only on a clear match (see the module doc)."""
    tasks = spec.tasks
    sentence = words(text)
    unique = set(sentence)
    vocab = {task.name: _task_words(task) for task in tasks}
    common = set.intersection(*vocab.values()) if vocab else set()
    generic = set(words(spec.name.replace("-", " ")))
    scores = []
    for task in tasks:
        own = vocab[task.name]
        distinctive = own - common
        covered = sum(1 for w in sentence if w in own or w in generic)
        scores.append(TaskScore(task.name, tuple(sorted(unique & distinctive)),
                                covered / len(sentence) if sentence else 0.0, _conflicts(unique, own)))
    ranked = sorted(scores, key=lambda s: (not s.conflicts, s.score, s.coverage), reverse=True)
    eligible = [s for s in ranked if not s.conflicts]
    chosen = None
    if eligible:
        best = eligible[0]
        runner_up = eligible[1].score if len(eligible) > 1 else 0
        if best.score >= MIN_SCORE and best.score >= 2 * runner_up and best.coverage >= MIN_COVERAGE:
            chosen = best.task
    return TaskMatch(tuple(ranked), chosen)

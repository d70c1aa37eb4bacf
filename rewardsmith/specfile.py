"""An editable spec file written from an introspected env (``rewardsmith spec init``).

The file has the shape of ``envs/cartpole.py``: fields with meanings and units, the actions, the
env's own reward and episode end in its words, a default task scored on the env's return, and
commented places for termination causes, novel tasks and shaping hints. It loads as written.
"""

from __future__ import annotations

import math
import re

from rewardsmith.spec import EnvSpec

__all__ = ["render_spec_file"]


def render_spec_file(spec: EnvSpec) -> str:
    """Python source defining ``SPEC`` for ``spec``'s env (every text from the env goes in as a literal)."""
    task = spec.default_task
    solved = "math.inf" if math.isinf(task.solved) else repr(task.solved)
    name = re.sub(r"[^a-z0-9]+", "-", spec.gym_id.rsplit(":", 1)[-1].lower()).strip("-") or "my-env"
    fields = "\n".join(
        f"        Field({f.name!r}, {f.index}, {f.meaning!r}, {f.unit!r}, {f.low!r}, {f.high!r}"
        + (f", shape={f.shape!r}" if f.shape else "") + (", integer=True" if f.integer else "") + "),"
        for f in spec.fields
    )
    episode_end = _comment(spec.termination_doc or "(the env's docstring does not say)", "        #     ")
    example = spec.fields[0].name if spec.fields else "obs_0"
    return f'''"""{spec.gym_id}: a rewardsmith spec written by `rewardsmith spec init` from the env's own documentation.

Edit it: field names and meanings, termination causes, tasks. Then
    rewardsmith describe THIS_FILE
    rewardsmith check my_reward.py --env THIS_FILE
"""

import math

from rewardsmith.spec import EnvSpec, Field, ShapingHint, TaskSpec, TerminationCause, env_reward_fitness

SPEC = EnvSpec(
    name={name!r},
    gym_id={spec.gym_id!r},
    description={_literal(spec.description)},
    fields=(
        # Field(name, index, meaning, unit, low, high): next_obs.<name> reads observation[index]; with
        # shape=(n,) it reads n values from index on as an array; integer=True reads ints.
{fields}
    ),
    actions={_literal(spec.actions)},
    reward_doc={_literal(spec.reward_doc)},
    termination_doc={_literal(spec.termination_doc)},
    terminations=(
        # The env's documentation says an episode ends when:
{episode_end}
        # Name each terminal cause with a test on the last observation, so the analyzer can count them, e.g.
        # TerminationCause("out_of_bounds", "{example} leaves [-1, 1]", lambda o, info: abs(o.{example}) > 1.0),
    ),
    tasks=(
        TaskSpec(
            name="default",
            description={task.description!r},
            fitness=env_reward_fitness,
            fitness_doc="the episode's return under the env's own reward",
            solved={solved},
            default=True,
            hints=(ShapingHint("env_reward", 'info["env_reward"]', "gain", scale=1.0, weight=1.0,
                               doc="the environment's own reward"),),
        ),
        # A novel task: a goal the env's own reward does not express, with a fitness that measures it
        # from the recorded episode (episode.obs.<field> holds every step's value), e.g.
        # TaskSpec(
        #     name="hold-high",
        #     description="Keep {example} as high as possible.",
        #     fitness=lambda episode: float(episode.obs.{example}[1:].mean()),
        #     fitness_doc="mean {example} over the episode",
        #     solved=0.5,
        #     hints=(ShapingHint("high", "next_obs.{example}", "gain", scale=1.0),),
        # ),
    ),
    # Terms the built-in designer may compose for any task on this env, e.g.
    # hints=(ShapingHint("still", "abs(next_obs.{example} - obs.{example})", "error", scale=0.1, optional=True),),
)
'''


def _literal(text: str, indent: str = "        ") -> str:
    """A string literal, one source line per line of ``text`` (implicitly joined) so it reads and edits well."""
    lines = text.splitlines(keepends=True)
    if len(lines) <= 1 and len(text) <= 80:
        return repr(text)
    body = "\n".join(f"{indent}{line!r}" for line in lines)
    return f"(\n{body}\n{indent[:-4]})"


def _comment(text: str, prefix: str) -> str:
    """``text`` as comment lines (control characters dropped, so nothing ends the comment early)."""
    lines = ["".join(ch for ch in line if ch.isprintable()).rstrip() for line in text.splitlines()]
    return "\n".join(f"{prefix}{line}".rstrip() for line in lines if line.strip()) or prefix.rstrip()

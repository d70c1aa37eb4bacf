"""Introspection: what a designer is told about an env nobody wrote a spec for, from the env itself."""

from __future__ import annotations

import pytest

from rewardsmith.introspect import SOURCE_BUDGET, env_source, field_name, introspect, parse_env_doc
from rewardsmith.spec import field_name_problem, load_spec
from tests.helpers_docenv import SLED, SledEnv

MUJOCO_STYLE = """
    ## Observation Space
    The observation space is a `Box(-Inf, Inf, (4,), float64)` where the elements are as follows:

    | Num | Observation                                       | Min  | Max | Name (in corresponding XML file) | Joint | Type (Unit)              |
    | --- | ------------------------------------------------- | ---- | --- | -------------------------------- | ----- | ------------------------ |
    | 0   | cosine of the angle of the first arm              | -Inf | Inf | cos(joint0)                      | hinge | unitless                 |
    | 1   | *angular velocity* of the first arm               | -Inf | Inf | joint0                           | hinge | angular velocity (rad/s) |
    | 2   | x-value of position_fingertip - position_target   | -Inf | Inf | NA                               | slide | position (m)             |
    | 3   | x-value of position_fingertip - position_target   | -Inf | Inf | NA                               | slide | position (m)             |
    | excluded | z-value (constantly 0)                       | -Inf | Inf | NA                               | slide | position (m)             |

    The joints in the XML file:

    | Num | Observation  | Min | Max | Unit        |
    |-----|--------------|-----|-----|-------------|
    | 0   | joint angle  | -1  | 1   | angle (rad) |

    ## Rewards
    The reward is the negative distance to the target.
"""


def test_a_mujoco_style_observation_table_becomes_named_fields_with_units():
    doc = parse_env_doc(MUJOCO_STYLE, size=4)
    assert [(f.index, f.name, f.unit) for f in doc.fields] == [
        (0, "cosine_of_angle_of_first_arm", ""),
        (1, "angular_velocity_of_first_arm", "rad/s"),
        (2, "x_value_of_position_fingertip_position", "m"),
        (3, "x_value_of_position_fingertip_position_2", "m"),  # told apart, not shadowed
    ]
    assert doc.fields[1].meaning == "angular velocity of the first arm"  # markdown emphasis dropped
    assert doc.rewards == "The reward is the negative distance to the target."
    assert doc.actions == "" and doc.episode_end == ""


def test_field_names_are_valid_identifiers_whatever_the_description():
    for text in ("x = cos(theta)", "3rd joint", "class", "keys", "°°°", "Cosine of `theta1`", "a" * 90):
        name = field_name(text, 5)
        assert field_name_problem(name) is None, (text, name)
    assert field_name("x = cos(theta)", 0) == "x_cos_theta"
    assert field_name("°°°", 5) == "obs_5"
    assert field_name("class", 1) == "class_value"
    assert len(field_name("the velocity of the very long pole attached to the cart on its hinge", 0)) <= 40


def test_an_env_without_a_docstring_table_keeps_numbered_fields():
    assert parse_env_doc("A point on a line.", 2).fields == ()
    assert parse_env_doc(None, 2) == parse_env_doc("", 2)


def test_an_introspected_env_is_described_by_its_docstring_spaces_probe_and_code():
    spec = load_spec(SLED)
    assert spec.source == "introspected"
    assert spec.field_names == ("sled_position", "sled_velocity", "fuel_left")
    position, velocity, fuel = spec.fields
    assert (position.unit, position.meaning, position.low, position.high) == ("m", "Sled Position", -10.0, 10.0)
    assert (velocity.unit, velocity.low, velocity.high) == ("m/s", None, None)  # the space declares no bound
    assert fuel.unit == ""
    found = spec.introspection
    assert found is not None and found.documented_fields == 3
    low, high = found.observed["sled_position"]
    assert -10 < low < high < 10  # what random play reached, not the declared bound
    assert found.terminated > 0 and found.truncated > 0  # the probe saw both kinds of episode end
    assert found.info_keys == ("distance_to_shore", "thrusting")

    text = spec.describe()
    assert "[0] sled_position (m): Sled Position; declared range [-10, 10]; observed in random play [" in text
    assert "[1] sled_velocity (m/s): Sled Velocity; unbounded; observed in random play" in text
    assert "fire the rocket to the left" in text  # Action Space section
    assert "The env's own reward: A reward of `-0.1` for every step with the rocket firing" in text
    assert "Termination: the sled slides off the lake" in text  # Episode End section
    assert f"{found.terminated} episodes terminated (a terminal state) and {found.truncated} were truncated" in text
    assert 'info["<key>"]): distance_to_shore, thrusting' in text
    assert "# SledEnv._get_obs\ndef _get_obs(self)" in text and "# SledEnv.step\ndef step(self, action)" in text
    assert "no documentation available" not in text and "the env's own reward (undocumented" not in text


def test_the_env_code_shown_is_trimmed_to_its_budget():
    full = env_source(SledEnv)
    assert "def reset" in full and "super().reset" in full  # the env's own reset, not gym.Env's
    short = env_source(SledEnv, budget=200)
    body, _, marker = short.rpartition("\n")
    assert len(body) <= 200 and marker.startswith("# [...") and "more characters trimmed" in marker
    assert len(env_source(SledEnv)) <= SOURCE_BUDGET + 80


def test_an_introspected_reward_reads_the_documented_field_names():
    from rewardsmith.critic import check

    spec = load_spec(SLED)
    verdict = check("def compute_reward(obs, action, next_obs, info):\n"
                    "    near = -abs(next_obs.sled_position)\n"
                    "    return near - 0.1 * info['thrusting'], {'near': near}\n", spec)
    assert verdict.accepted, verdict.issues
    wrong = check("def compute_reward(obs, action, next_obs, info):\n    return next_obs.obs_0, {}\n", spec)
    assert not wrong.accepted
    assert "valid fields: sled_position, sled_velocity, fuel_left" in str(wrong.errors[0])


def test_a_gymnasium_docstring_names_classic_control_fields():
    spec = introspect("CartPole-v0")
    assert spec.field_names == ("cart_position", "cart_velocity", "pole_angle", "pole_angular_velocity")
    assert "Push cart to the left" in spec.actions


def test_an_unknown_id_is_still_an_unknown_env():
    from rewardsmith.errors import UnknownEnvError

    with pytest.raises(UnknownEnvError, match="bundled envs are"):
        introspect("Nope-v0")


# ------------------------------------------------------------------------------------ spec init


@pytest.mark.parametrize("gym_id", [SLED, "CartPole-v0"])
def test_spec_init_writes_a_spec_that_describe_and_check_accept_as_written(tmp_path, gym_id):
    from tests.test_cli import rewardsmith

    introspected = introspect(gym_id)
    first = introspected.field_names[1]
    path = tmp_path / "my_spec.py"
    made = rewardsmith("spec", "init", gym_id, "-o", str(path))
    assert made.returncode == 0, made.stderr
    text = path.read_text(encoding="utf-8")
    assert "# TaskSpec(" in text and "# TerminationCause(" in text  # places for novel tasks and causes

    described = rewardsmith("describe", str(path))
    assert described.returncode == 0, described.stderr
    assert f"[1] {first}" in described.stdout
    reward = tmp_path / "reward.py"
    reward.write_text(f"def compute_reward(obs, action, next_obs, info):\n"
                      f"    still = -abs(next_obs.{first})\n    return still, {{'still': still}}\n")
    checked = rewardsmith("check", str(reward), "--env", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "accepted" in checked.stdout

    written = load_spec(str(path))
    assert [(f.name, f.index, f.meaning, f.unit, f.low, f.high) for f in written.fields] == \
        [(f.name, f.index, f.meaning, f.unit, f.low, f.high) for f in introspected.fields]
    assert (written.actions, written.reward_doc, written.termination_doc) == \
        (introspected.actions, introspected.reward_doc, introspected.termination_doc)
    assert written.default_task.solved == introspected.default_task.solved

    again = rewardsmith("spec", "init", gym_id, "-o", str(path))
    assert again.returncode == 2 and "exists" in again.stderr  # never overwrites without --force

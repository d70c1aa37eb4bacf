"""CartPole-v1: balance a pole on a cart that moves along a frictionless track."""

import math

import numpy as np

from rewardsmith.episode import Episode
from rewardsmith.spec import EnvSpec, Field, PPOConfig, ShapingHint, TaskSpec, TerminationCause, env_reward_fitness

POLE_LIMIT = 12 * 2 * math.pi / 360  # 0.2094 rad: the episode ends past this angle (as Gymnasium computes it)
TRACK_LIMIT = 2.4
TARGET_X = 1.0
TARGET_BAND = 0.25


def steps_near_target(episode: Episode) -> float:
    """Steps spent with the cart within 0.25 of x = +1.0 (the pole is up for as long as the episode lasts)."""
    x = episode.obs.cart_position[1:]
    return float(np.sum(np.abs(x - TARGET_X) < TARGET_BAND))


HOLD_RIGHT_REFERENCE = '''\
import math


def compute_reward(obs, action, next_obs, info):
    upright = 1.0 - abs(next_obs.pole_angle) / 0.2095
    near_target = math.exp(-abs(next_obs.cart_position - 1.0) / 0.25)
    settle = -0.1 * abs(next_obs.cart_velocity)
    total = 0.5 * upright + near_target + settle
    return total, {"upright": upright, "near_target": near_target, "settle": settle}
'''

HOLD_RIGHT_SPARSE = '''\
def compute_reward(obs, action, next_obs, info):
    inside = 1.0 if abs(next_obs.cart_position - 1.0) < 0.25 else 0.0
    return inside, {"inside": inside}
'''

BALANCE_SPARSE = '''\
def compute_reward(obs, action, next_obs, info):
    alive = 0.0 if info["terminated"] else 1.0
    return alive, {"alive": alive}
'''

SPEC = EnvSpec(
    name="cartpole",
    gym_id="CartPole-v1",
    description="A pole is hinged on a cart that moves left and right along a frictionless track. "
                "The pole starts nearly upright; pushing the cart keeps it balanced.",
    fields=(
        Field("cart_position", 0, "cart position along the track, 0 is the centre", "m", -4.8, 4.8),
        Field("cart_velocity", 1, "cart velocity, positive to the right", "m/s"),
        Field("pole_angle", 2, "pole angle from vertical, positive leaning right", "rad", -0.418, 0.418),
        Field("pole_angular_velocity", 3, "pole angular velocity", "rad/s"),
    ),
    actions="0 pushes the cart to the left, 1 pushes it to the right (a fixed force of 10 N).",
    reward_doc="+1 for every step, including the step on which the episode ends.",
    terminations=(
        TerminationCause("pole_fell", "the pole leans more than 12 degrees (|pole_angle| > 0.2095)",
                         lambda o, info: abs(o.pole_angle) > POLE_LIMIT),
        TerminationCause("cart_left_track", "the cart leaves the track (|cart_position| > 2.4)",
                         lambda o, info: abs(o.cart_position) > TRACK_LIMIT),
    ),
    tasks=(
        TaskSpec(
            name="balance",
            description="Keep the pole balanced upright for as long as possible.",
            fitness=env_reward_fitness,
            fitness_doc="steps survived (the env's own return); an episode lasts at most 500 steps",
            solved=475.0,
            sparse_reward=BALANCE_SPARSE,
            default=True,
            hints=(
                ShapingHint("alive", "1.0", "constant", weight=1.0, doc="paid every step the pole is up"),
                ShapingHint("upright", "abs(next_obs.pole_angle)", "error", scale=0.2, weight=1.0),
                ShapingHint("centred", "abs(next_obs.cart_position)", "error", scale=2.4, weight=0.3,
                            optional=True),
                ShapingHint("fell", 'info["terminated"]', "flag", weight=-1.0, optional=True),
            ),
        ),
        TaskSpec(
            name="hold-right",
            description="Keep the pole balanced while holding the cart near x = +1.0, right of the centre.",
            fitness=steps_near_target,
            fitness_doc="steps with the cart within 0.25 of x = +1.0 while the pole stays up (at most 500)",
            solved=400.0,
            # At 25k steps neither the reference reward nor a designed one gets there (mean 186 and
            # 113 over 3 seeds); at 50k the reference solves 2 seeds of 3.
            timesteps=50_000,
            reference_reward=HOLD_RIGHT_REFERENCE,
            sparse_reward=HOLD_RIGHT_SPARSE,
            hints=(
                ShapingHint("upright", "abs(next_obs.pole_angle)", "error", scale=0.2, weight=0.5),
                ShapingHint("near_target", "abs(next_obs.cart_position - 1.0)", "error", scale=0.5, weight=1.0),
                ShapingHint("settle", "abs(next_obs.cart_velocity)", "error", scale=1.0, weight=0.1,
                            optional=True),
                ShapingHint("alive", "1.0", "constant", weight=0.2, optional=True),
                ShapingHint("fell", 'info["terminated"]', "flag", weight=-1.0, optional=True),
            ),
        ),
    ),
    ppo=PPOConfig(
        n_envs=8, n_steps=32, batch_size=256, n_epochs=20, gamma=0.98, gae_lambda=0.8,
        learning_rate=1e-3, linear_lr=True, clip_range=0.2, linear_clip=True, ent_coef=0.0,
        timesteps=25_000, schedule_horizon=100_000,
    ),
)

"""Pendulum-v1: swing a pendulum up from any angle and balance it upright with a weak motor."""

import math

import numpy as np

from rewardsmith.episode import Episode
from rewardsmith.spec import EnvSpec, Field, PPOConfig, ShapingHint, TaskSpec, env_reward_fitness

TILT = math.pi / 12  # 15 degrees counter-clockwise from upright: the tilted task's target angle
TILT_TOLERANCE = 0.1  # rad, about 6 degrees
UPRIGHT_TOLERANCE = 0.1


def _angle(cos_theta: np.ndarray, sin_theta: np.ndarray) -> np.ndarray:
    return np.arctan2(sin_theta, cos_theta)


def steps_at_tilt(episode: Episode) -> float:
    """Steps with the pole within 0.1 rad of 15 degrees counter-clockwise from upright (at most 200)."""
    theta = _angle(episode.obs.cos_theta[1:], episode.obs.sin_theta[1:])
    error = np.angle(np.exp(1j * (theta - TILT)))  # wrapped to [-pi, pi]
    return float(np.sum(np.abs(error) < TILT_TOLERANCE))


TILT_REFERENCE = '''\
import math

TARGET = math.pi / 12  # 15 degrees counter-clockwise from upright


def compute_reward(obs, action, next_obs, info):
    theta = math.atan2(next_obs.sin_theta, next_obs.cos_theta)
    error = math.remainder(theta - TARGET, 2.0 * math.pi)  # wrapped to [-pi, pi]
    # the env's own angle cost, centred on the tilted target instead of upright: it drives the swing-up
    angle_cost = -error ** 2
    # a sharp bonus for being right on target (the squared cost alone barely cares about the last 0.1 rad)
    on_target = math.exp(-abs(error) / 0.1)
    spin_cost = -0.1 * next_obs.angular_velocity ** 2
    effort_cost = -0.001 * float(action[0]) ** 2
    total = angle_cost + on_target + spin_cost + effort_cost
    return total, {"angle": angle_cost, "on_target": on_target, "spin": spin_cost, "effort": effort_cost}
'''

TILT_SPARSE = '''\
import math


def compute_reward(obs, action, next_obs, info):
    theta = math.atan2(next_obs.sin_theta, next_obs.cos_theta)
    at_target = 1.0 if abs(math.remainder(theta - math.pi / 12, 2.0 * math.pi)) < 0.1 else 0.0
    return at_target, {"at_target": at_target}
'''

UPRIGHT_SPARSE = '''\
import math


def compute_reward(obs, action, next_obs, info):
    upright = 1.0 if abs(math.atan2(next_obs.sin_theta, next_obs.cos_theta)) < 0.1 else 0.0
    return upright, {"upright": upright}
'''

ANGLE = "abs(math.atan2(next_obs.sin_theta, next_obs.cos_theta))"
TILT_ERROR = "abs(math.remainder(math.atan2(next_obs.sin_theta, next_obs.cos_theta) - math.pi / 12, 2.0 * math.pi))"

SPEC = EnvSpec(
    name="pendulum",
    gym_id="Pendulum-v1",
    description="A rigid pole (1 m, 1 kg) hangs from a frictionless pivot and starts at a random angle and speed. "
                "A motor at the pivot applies a torque of at most 2 N m, too weak to lift the pole straight up "
                "from hanging: it has to swing it up. Gravity pulls with a torque of 5 * sin(theta), so the "
                "motor can hold the pole still only within about 23 degrees of upright (or of hanging down). "
                "The angle theta is 0 upright and grows counter-clockwise; it is seen as its cosine and sine.",
    fields=(
        Field("cos_theta", 0, "cosine of the pole angle: 1 upright, -1 hanging down", "", -1.0, 1.0),
        Field("sin_theta", 1, "sine of the pole angle: positive when tilted counter-clockwise from upright",
              "", -1.0, 1.0),
        Field("angular_velocity", 2, "angular velocity of the pole, positive counter-clockwise", "rad/s", -8.0, 8.0),
    ),
    actions="action[0] in [-2, 2] is the torque applied at the pivot, in N m (positive counter-clockwise).",
    reward_doc="-(theta ** 2 + 0.1 * angular_velocity ** 2 + 0.001 * torque ** 2) every step, with theta wrapped "
               "to [-pi, pi] (0 upright): between about -16.3 and 0 per step; the episode lasts 200 steps.",
    terminations=(),
    tasks=(
        TaskSpec(
            name="swing-up",
            description="Swing the pendulum up and keep it balanced upright with as little motion and torque "
                        "as possible.",
            fitness=env_reward_fitness,
            fitness_doc="the env's own return over the 200-step episode (0 is perfect; about -150 is typical "
                        "for a good swing-up from hanging)",
            solved=-200.0,
            sparse_reward=UPRIGHT_SPARSE,
            default=True,
            hints=(
                ShapingHint("upright", ANGLE, "error", scale=1.0, weight=1.0,
                            doc="angle from upright, rad (0 to pi)"),
                ShapingHint("spin", "abs(next_obs.angular_velocity)", "error", scale=8.0, weight=0.1, optional=True,
                            doc="angular speed"),
            ),
        ),
        TaskSpec(
            name="hold-tilted",
            description="Swing the pendulum up and hold it still, tilted 15 degrees counter-clockwise from "
                        "upright (theta = pi / 12: sin_theta = 0.259, cos_theta = 0.966).",
            fitness=steps_at_tilt,
            fitness_doc="steps (of 200) with the pole within 0.1 rad of theta = pi / 12; holding it there takes "
                        "a steady torque of about 1.3 N m (gravity pulls it over), and swinging up from hanging "
                        "takes about 60 to 100 steps",
            solved=100.0,
            reference_reward=TILT_REFERENCE,
            sparse_reward=TILT_SPARSE,
            hints=(
                ShapingHint("tilt", TILT_ERROR, "error", scale=1.0, weight=1.0,
                            doc="angle from the 15-degree target, rad (0 to pi)"),
                ShapingHint("on_target", TILT_ERROR, "error", scale=0.1, weight=1.0,
                            doc="the same angle, with a sharp bonus right on target"),
                ShapingHint("spin", "abs(next_obs.angular_velocity)", "error", scale=8.0, weight=0.1, optional=True,
                            doc="angular speed: holding means standing still"),
            ),
        ),
    ),
    hints=(
        ShapingHint("effort", "float(action[0]) ** 2", "error", scale=4.0, weight=0.01, optional=True,
                    doc="squared torque (the env's own reward charges 0.001 per N m squared)"),
    ),
    # rl-baselines3-zoo ppo.yml, Pendulum-v1 (batch_size is SB3's default).
    ppo=PPOConfig(
        n_envs=4, n_steps=1024, batch_size=64, n_epochs=10, gamma=0.9, gae_lambda=0.95,
        learning_rate=1e-3, clip_range=0.2, ent_coef=0.0, use_sde=True, sde_sample_freq=4,
        timesteps=50_000,
    ),
)

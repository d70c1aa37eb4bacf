"""Walker2d-v5 (MuJoCo): a two-legged planar robot that walks."""

import numpy as np

from rewardsmith.episode import Episode
from rewardsmith.spec import EnvSpec, Field, PPOConfig, ShapingHint, TaskSpec, TerminationCause, env_reward_fitness

MIN_HEIGHT, MAX_HEIGHT = 0.8, 2.0  # the episode ends with the torso outside this height range ...
MAX_ANGLE = 1.0  # ... or tilted this far (rad)
TARGET_SPEED = 1.0  # the slow walk's target, m/s
SPEED_BAND = 0.5  # within this of the target counts as on pace
JOINTS = ("thigh", "leg", "foot", "left_thigh", "left_leg", "left_foot")
XML_JOINTS = ("thigh_joint", "leg_joint", "foot_joint", "thigh_left_joint", "leg_left_joint", "foot_left_joint")


def steps_on_pace(episode: Episode) -> float:
    """Steps (of 1000) walking forward within 0.5 m/s of 1.0 m/s (the env's own x_velocity)."""
    speeds = np.asarray([info.get("x_velocity", 0.0) for info in episode.infos or []])
    return float(np.sum(np.abs(speeds - TARGET_SPEED) <= SPEED_BAND))


WALK_SLOW_REFERENCE = '''\
import math


def compute_reward(obs, action, next_obs, info):
    pace = 2.0 * math.exp(-abs(info["x_velocity"] - 1.0) / 0.3)  # 2 at exactly 1 m/s
    upright = 0.5 * math.exp(-abs(next_obs.torso_angle) / 0.3)
    alive = 0.5
    effort = -0.001 * float(sum(a * a for a in action))
    fell = -10.0 if info["terminated"] else 0.0
    total = pace + upright + alive + effort + fell
    return total, {"pace": pace, "upright": upright, "alive": alive, "effort": effort, "fell": fell}
'''

WALK_SLOW_SPARSE = '''\
def compute_reward(obs, action, next_obs, info):
    on_pace = 1.0 if abs(info["x_velocity"] - 1.0) <= 0.5 else 0.0
    return on_pace, {"on_pace": on_pace}
'''

WALK_FORWARD_SPARSE = '''\
def compute_reward(obs, action, next_obs, info):
    forward = 1.0 if info["x_velocity"] > 1.0 else 0.0
    return forward, {"forward": forward}
'''

SPEC = EnvSpec(
    name="walker2d",
    gym_id="Walker2d-v5",
    description="A two-dimensional two-legged robot: a torso on two legs (right and left), each a thigh, a leg and "
                "a foot joined by hinges, moving in the x-z plane (x forward, z up). It starts standing with its "
                "torso at about 1.25 m; the simulation step is 0.008 s, an episode lasts at most 1000 steps (8 s). "
                "The env's info holds x_position (m, the torso's position along x, 0 at reset, not in the "
                "observation), x_velocity (m/s, forward speed), z_distance_from_origin (m), and the parts of its "
                "own reward: reward_forward, reward_ctrl, reward_survive.",
    fields=(
        Field("torso_height", 0, "height of the torso (rootz), about 1.25 standing", "m"),
        Field("torso_angle", 1, "pitch of the torso from upright (rooty)", "rad"),
        *(Field(f"{name}_angle", 2 + i, f"angle of the {name.replace('_', ' ')} hinge ({xml})", "rad")
          for i, (name, xml) in enumerate(zip(JOINTS, XML_JOINTS))),
        Field("torso_x_velocity", 8, "forward velocity of the torso (rootx)", "m/s"),
        Field("torso_z_velocity", 9, "vertical velocity of the torso, positive up", "m/s"),
        Field("torso_angular_velocity", 10, "pitch rate of the torso", "rad/s"),
        *(Field(f"{name}_angular_velocity", 11 + i, f"angular velocity of the {name.replace('_', ' ')} hinge",
                "rad/s") for i, name in enumerate(JOINTS)),
    ),
    actions="6 torques in [-1, 1]: action[0] right thigh, action[1] right leg, action[2] right foot, action[3] left "
            "thigh, action[4] left leg, action[5] left foot (actuator gear 100).",
    reward_doc="reward_survive 1 for every step the walker is healthy + reward_forward (the forward velocity "
               "x_velocity, m/s) + reward_ctrl (-0.001 * the sum of squared actions).",
    terminations=(
        TerminationCause("fell", "the torso drops to 0.8 m or lower", lambda o, info: o.torso_height <= MIN_HEIGHT),
        TerminationCause("jumped", "the torso rises to 2.0 m or higher", lambda o, info: o.torso_height >= MAX_HEIGHT),
        TerminationCause("tipped_over", "the torso tilts 1 rad or more from upright",
                         lambda o, info: abs(o.torso_angle) >= MAX_ANGLE),
    ),
    tasks=(
        TaskSpec(
            name="walk-forward",
            description="Walk forward as fast as possible without falling.",
            fitness=env_reward_fitness,
            fitness_doc="the env's own return: 1 per healthy step + the distance walked forward (m) / 0.008 s - "
                        "the control cost; about 1000 standing still for the whole episode, 3000 counts as "
                        "solved here (Gymnasium sets no threshold), which takes about 1M steps of PPO",
            solved=3000.0,
            sparse_reward=WALK_FORWARD_SPARSE,
            default=True,
            hints=(
                ShapingHint("env_reward", 'info["env_reward"]', "gain", scale=3.0, weight=1.0,
                            doc="the env's own reward: forward speed, staying healthy, little effort"),
                ShapingHint("forward", 'info["x_velocity"]', "gain", scale=1.0, weight=0.5, optional=True,
                            doc="forward speed"),
            ),
        ),
        TaskSpec(
            name="walk-slow",
            description="Walk forward slowly and steadily at 1.0 m/s, without falling.",
            fitness=steps_on_pace,
            fitness_doc="steps (of 1000) with the forward speed (info x_velocity) within 0.5 m/s of 1.0 m/s; "
                        "falling ends the episode and the count; 600 counts as solved",
            solved=600.0,
            reference_reward=WALK_SLOW_REFERENCE,
            sparse_reward=WALK_SLOW_SPARSE,
            hints=(
                ShapingHint("pace", 'abs(info["x_velocity"] - 1.0)', "error", scale=0.3, weight=2.0,
                            doc="distance of the forward speed from 1.0 m/s"),
                ShapingHint("upright", "abs(next_obs.torso_angle)", "error", scale=0.3, weight=0.5,
                            optional=True, doc="tilt of the torso"),
                ShapingHint("alive", "1.0", "constant", weight=0.5, optional=True, doc="paid every healthy step"),
                ShapingHint("fell", 'info["terminated"]', "flag", weight=-10.0, optional=True,
                            doc="the walker fell or tipped over"),
            ),
        ),
    ),
    hints=(
        ShapingHint("effort", "float(np.sum(np.square(action)))", "error", scale=6.0, weight=0.05, optional=True,
                    doc="sum of squared torques", requires=("continuous_actions",)),
    ),
    # rl-baselines3-zoo ppo.yml, Walker2d-v3 (tuned for 1M steps). The budget here, 400 updates of 512 steps,
    # is a few minutes a candidate on two CPU cores: enough to stay up and shuffle forward.
    ppo=PPOConfig(
        n_envs=1, n_steps=512, batch_size=32, n_epochs=20, gamma=0.99, gae_lambda=0.95,
        learning_rate=5.05041e-05, clip_range=0.1, ent_coef=0.000585045, vf_coef=0.871923, max_grad_norm=1.0,
        normalize_obs=True, normalize_reward=True, timesteps=204_800, schedule_horizon=1_000_000,
    ),
    extra="mujoco",
)

"""Ant-v5 (MuJoCo): a four-legged robot that walks on a plane."""

import math

import numpy as np

from rewardsmith.episode import Episode
from rewardsmith.spec import EnvSpec, Field, PPOConfig, ShapingHint, TaskSpec, TerminationCause, env_reward_fitness

MIN_HEIGHT, MAX_HEIGHT = 0.2, 1.0  # the episode ends with the torso outside this height range
PLACE = 1.0  # turning "in place": within this many metres of the start
LEGS = ("front_left", "front_right", "back_left", "back_right")
XML_LEGS = ("1", "2", "3", "4")
BODIES = ("torso", *(f"{leg}_{part}" for leg in LEGS for part in ("leg", "thigh", "shin")))
"""The 13 bodies whose contact wrenches the observation holds, in model order (MuJoCo's front_left_leg, aux_1 and
the unnamed ankle body are a leg's hip link, thigh and shin)."""
WRENCH = ("torque_x", "torque_y", "torque_z", "force_x", "force_y", "force_z")


def yaw(w: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Heading of the torso about the vertical axis, from its orientation quaternion."""
    return np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def turn_in_place(episode: Episode) -> float:
    """Radians turned counter-clockwise (seen from above) on steps that end within 1 m of the start."""
    o = episode.obs
    heading = yaw(o.torso_orientation_w, o.torso_orientation_x, o.torso_orientation_y, o.torso_orientation_z)
    turns = (np.diff(heading) + math.pi) % (2 * math.pi) - math.pi
    near = np.asarray([info.get("distance_from_origin", math.inf) <= PLACE for info in episode.infos or []])
    if len(near) != len(turns):
        return 0.0
    return float(np.sum(turns[near]))


TURN_REFERENCE = '''\
def compute_reward(obs, action, next_obs, info):
    spin = max(min(next_obs.torso_z_angular_velocity, 3.0), -3.0)  # yaw rate while upright, rad/s
    stay = -0.5 * info["distance_from_origin"]
    alive = 0.5
    effort = -0.05 * float(sum(a * a for a in action))
    total = spin + stay + alive + effort
    return total, {"spin": spin, "stay": stay, "alive": alive, "effort": effort}
'''

TURN_SPARSE = '''\
def compute_reward(obs, action, next_obs, info):
    turning = next_obs.torso_z_angular_velocity > 0.5 and info["distance_from_origin"] <= 1.0
    spinning = 1.0 if turning else 0.0
    return spinning, {"spinning": spinning}
'''

WALK_SPARSE = '''\
def compute_reward(obs, action, next_obs, info):
    forward = 1.0 if info["x_velocity"] > 1.0 else 0.0
    return forward, {"forward": forward}
'''

_JOINT_FIELDS = [(f"{leg}_{part}", f"{part}_{n}", leg.replace("_", " ")) for leg, n in zip(LEGS, XML_LEGS)
                 for part in ("hip", "ankle")]

SPEC = EnvSpec(
    name="ant",
    gym_id="Ant-v5",
    description="A three-dimensional four-legged robot: a round torso with four legs (front left, front right, "
                "back left, back right), each with a hip hinge (swings the leg around the torso) and an ankle "
                "hinge (bends it). It walks on a flat plane (x forward, y left, z up); the simulation step is "
                "0.05 s, an episode lasts at most 1000 steps (50 s). The env's info holds x_position and "
                "y_position (m, the torso's position, 0 at reset, not in the observation), "
                "distance_from_origin (m), x_velocity and y_velocity (m/s), and the parts of its own reward: "
                "reward_forward, reward_ctrl, reward_contact, reward_survive.",
    fields=(
        Field("torso_height", 0, "height of the torso's centre, about 0.55 standing", "m"),
        Field("torso_orientation_w", 1, "orientation quaternion of the torso, w (1 when level and facing +x)", ""),
        Field("torso_orientation_x", 2, "orientation quaternion of the torso, x", ""),
        Field("torso_orientation_y", 3, "orientation quaternion of the torso, y", ""),
        Field("torso_orientation_z", 4, "orientation quaternion of the torso, z (heading: yaw = atan2(2(wz + xy), "
              "1 - 2(y^2 + z^2)))", ""),
        *(Field(f"{name}_angle", 5 + i, f"angle of the {leg} {name.rsplit('_', 1)[1]} hinge ({xml})", "rad")
          for i, (name, xml, leg) in enumerate(_JOINT_FIELDS)),
        Field("torso_x_velocity", 13, "velocity of the torso along x (forward)", "m/s"),
        Field("torso_y_velocity", 14, "velocity of the torso along y (left)", "m/s"),
        Field("torso_z_velocity", 15, "velocity of the torso along z (up)", "m/s"),
        Field("torso_x_angular_velocity", 16, "angular velocity about the torso's own x axis (roll rate)", "rad/s"),
        Field("torso_y_angular_velocity", 17, "angular velocity about the torso's own y axis (pitch rate)", "rad/s"),
        Field("torso_z_angular_velocity", 18, "angular velocity about the torso's own z axis (yaw rate while "
              "upright, positive counter-clockwise seen from above)", "rad/s"),
        *(Field(f"{name}_angular_velocity", 19 + i, f"angular velocity of the {leg} {name.rsplit('_', 1)[1]} hinge",
                "rad/s") for i, (name, _, leg) in enumerate(_JOINT_FIELDS)),
        *(Field(f"contact_{body}_{part}", 27 + 6 * b + k,
                f"external (contact) {part.replace('_', ' ')} on the {body.replace('_', ' ')}, clipped to [-1, 1]",
                "N m" if part.startswith("torque") else "N", -1.0, 1.0)
          for b, body in enumerate(BODIES) for k, part in enumerate(WRENCH)),
    ),
    actions="8 torques in [-1, 1]: action[0] back right hip, action[1] back right ankle, action[2] front left hip, "
            "action[3] front left ankle, action[4] front right hip, action[5] front right ankle, action[6] back "
            "left hip, action[7] back left ankle.",
    reward_doc="reward_survive 1 for every step the ant is healthy + reward_forward (the forward velocity "
               "x_velocity, m/s) + reward_ctrl (-0.5 * the sum of squared actions) + reward_contact (-0.0005 * "
               "the sum of squared contact forces). Walking well forward scores 6000 or more over 1000 steps.",
    terminations=(
        TerminationCause("fell", "the torso drops below 0.2 m (collapsed or flipped over)",
                         lambda o, info: o.torso_height < MIN_HEIGHT),
        TerminationCause("jumped", "the torso rises above 1.0 m", lambda o, info: o.torso_height > MAX_HEIGHT),
    ),
    tasks=(
        TaskSpec(
            name="walk-forward",
            description="Walk forward (towards +x) as fast as possible without falling over.",
            fitness=env_reward_fitness,
            fitness_doc="the env's own return: 1 per healthy step + the distance walked forward (m) / 0.05 s - "
                        "the control and contact costs; 6000 counts as solved (Gymnasium's threshold), which "
                        "takes millions of steps of PPO",
            solved=6000.0,
            sparse_reward=WALK_SPARSE,
            default=True,
            hints=(
                ShapingHint("env_reward", 'info["env_reward"]', "gain", scale=2.0, weight=1.0,
                            doc="the env's own reward: forward speed, staying healthy, little effort"),
                ShapingHint("forward", 'info["x_velocity"]', "gain", scale=1.0, weight=0.5, optional=True,
                            doc="forward speed"),
            ),
        ),
        TaskSpec(
            name="turn-in-place",
            description="Turn in place counter-clockwise (seen from above) as fast as possible, staying where it "
                        "started and on its feet.",
            fitness=turn_in_place,
            fitness_doc="radians turned counter-clockwise (the torso's heading from its quaternion, summed step "
                        "by step) on steps that end within 1 m of the start (info distance_from_origin); 30 (about "
                        "five turns in 50 s) counts as solved",
            solved=30.0,
            reference_reward=TURN_REFERENCE,
            sparse_reward=TURN_SPARSE,
            hints=(
                ShapingHint("spin", "max(min(next_obs.torso_z_angular_velocity, 3.0), -3.0)", "gain", scale=1.0,
                            weight=1.0, doc="yaw rate, counter-clockwise positive"),
                ShapingHint("stay", 'info["distance_from_origin"]', "error", scale=1.0, weight=0.5,
                            doc="distance from the start"),
                ShapingHint("alive", "1.0", "constant", weight=0.5, optional=True, doc="paid every healthy step"),
            ),
        ),
    ),
    hints=(
        ShapingHint("effort", "float(np.sum(np.square(action)))", "error", scale=8.0, weight=0.05, optional=True,
                    doc="sum of squared torques", requires=("continuous_actions",)),
    ),
    # rl-baselines3-zoo ppo.yml, Ant-v3: its MuJoCo defaults (normalize, SB3's PPO settings, one env; the zoo
    # keeps no tuned PPO entry for Ant). The budget here, 100 updates of 2048 steps, learns to stay upright.
    ppo=PPOConfig(
        n_envs=1, n_steps=2048, batch_size=64, n_epochs=10, gamma=0.99, gae_lambda=0.95, learning_rate=3e-4,
        clip_range=0.2, normalize_obs=True, normalize_reward=True, timesteps=204_800,
    ),
    extra="mujoco",
)

"""Hopper-v5 (MuJoCo): a one-legged robot in a plane that hops forward."""

import numpy as np

from rewardsmith.episode import Episode
from rewardsmith.spec import EnvSpec, Field, PPOConfig, ShapingHint, TaskSpec, TerminationCause, env_reward_fitness

MIN_HEIGHT = 0.7  # the episode ends at or below this torso height ...
MAX_ANGLE = 0.2  # ... or with the torso tilted this far (rad) ...
MAX_STATE = 100.0  # ... or with any other observation value this large
STAND_HEIGHT = 1.25  # the torso's height standing still at reset
HOP_HEIGHT = 1.35  # above this the foot is off the ground (a hop)
UPRIGHT = 0.1  # |torso_angle| under this counts as upright
PLACE = 0.5  # hopping "in place": within this many metres of the start


def hops_in_place(episode: Episode) -> float:
    """Steps (of 1000) with the torso above 1.35 m (in the air), upright and within 0.5 m of the start."""
    o = episode.obs
    x = np.asarray([info.get("x_position", 0.0) for info in episode.infos or []])
    if len(x) != len(episode):
        return 0.0
    airborne = o.torso_height[1:] > HOP_HEIGHT
    upright = np.abs(o.torso_angle[1:]) < UPRIGHT
    return float(np.sum(airborne & upright & (np.abs(x) < PLACE)))


HOP_IN_PLACE_REFERENCE = '''\
import math


def compute_reward(obs, action, next_obs, info):
    # height above standing pays only while the torso is upright and the hopper stays near its start
    upright = math.exp(-abs(next_obs.torso_angle) / 0.1)
    near_start = math.exp(-abs(info["x_position"]) / 0.5)
    height = max(next_obs.torso_height - 1.25, 0.0) / 0.3
    lift = 2.0 * height * upright * near_start
    drift = -0.5 * abs(next_obs.torso_x_velocity)
    alive = 0.5
    effort = -0.001 * float(sum(a * a for a in action))
    total = lift + drift + alive + effort
    return total, {"lift": lift, "drift": drift, "alive": alive, "effort": effort}
'''

HOP_IN_PLACE_SPARSE = '''\
def compute_reward(obs, action, next_obs, info):
    hop = next_obs.torso_height > 1.35 and abs(next_obs.torso_angle) < 0.1 and abs(info["x_position"]) < 0.5
    hopping = 1.0 if hop else 0.0
    return hopping, {"hopping": hopping}
'''

HOP_FORWARD_SPARSE = '''\
def compute_reward(obs, action, next_obs, info):
    forward = 1.0 if info["x_velocity"] > 1.0 else 0.0
    return forward, {"forward": forward}
'''

SPEC = EnvSpec(
    name="hopper",
    gym_id="Hopper-v5",
    description="A two-dimensional one-legged robot: a torso on top of a thigh, a leg and a foot, joined by three "
                "hinges, moving in the x-z plane (x forward, z up). It starts standing upright with its torso at "
                "about 1.25 m and must hop to move; the simulation step is 0.008 s, an episode lasts at most 1000 "
                "steps (8 s). The env's info holds x_position (m, the torso's position along x, 0 at reset, not in "
                "the observation), x_velocity (m/s, forward speed), z_distance_from_origin (m), and the parts of "
                "its own reward: reward_forward, reward_ctrl, reward_survive.",
    fields=(
        Field("torso_height", 0, "height of the torso (rootz), about 1.25 standing", "m"),
        Field("torso_angle", 1, "pitch of the torso from upright (rooty), positive leaning back", "rad"),
        Field("thigh_angle", 2, "angle of the thigh hinge (thigh_joint)", "rad"),
        Field("leg_angle", 3, "angle of the leg hinge (leg_joint)", "rad"),
        Field("foot_angle", 4, "angle of the foot hinge (foot_joint)", "rad"),
        Field("torso_x_velocity", 5, "forward velocity of the torso (rootx)", "m/s"),
        Field("torso_z_velocity", 6, "vertical velocity of the torso (rootz), positive up", "m/s"),
        Field("torso_angular_velocity", 7, "pitch rate of the torso (rooty)", "rad/s"),
        Field("thigh_angular_velocity", 8, "angular velocity of the thigh hinge", "rad/s"),
        Field("leg_angular_velocity", 9, "angular velocity of the leg hinge", "rad/s"),
        Field("foot_angular_velocity", 10, "angular velocity of the foot hinge", "rad/s"),
    ),
    actions="3 torques in [-1, 1]: action[0] on the thigh hinge, action[1] on the leg hinge, action[2] on the foot "
            "hinge (actuator gear 200).",
    reward_doc="reward_survive 1 for every step the hopper is healthy + reward_forward (the forward velocity "
               "x_velocity, m/s) + reward_ctrl (-0.001 * the sum of squared actions). A good forward hop scores "
               "3000 or more over 1000 steps.",
    terminations=(
        TerminationCause("fell", "the torso drops to 0.7 m or lower", lambda o, info: o.torso_height <= MIN_HEIGHT),
        TerminationCause("tipped_over", "the torso tilts 0.2 rad or more from upright",
                         lambda o, info: abs(o.torso_angle) >= MAX_ANGLE),
        TerminationCause("unstable", "an observation value other than the height reaches 100 in size",
                         lambda o, info: any(abs(v) >= MAX_STATE for k, v in o.items() if k != "torso_height")),
    ),
    tasks=(
        TaskSpec(
            name="hop-forward",
            description="Hop forward as fast as possible without falling.",
            fitness=env_reward_fitness,
            fitness_doc="the env's own return: 1 per healthy step + the distance hopped forward (m) / 0.008 s "
                        "- the control cost; about 1000 standing still for the whole episode, 3800 counts as "
                        "solved (Gymnasium's threshold), which takes about 1M steps of PPO",
            solved=3800.0,
            sparse_reward=HOP_FORWARD_SPARSE,
            default=True,
            hints=(
                ShapingHint("env_reward", 'info["env_reward"]', "gain", scale=3.0, weight=1.0,
                            doc="the env's own reward: forward speed, staying healthy, little effort"),
                ShapingHint("forward", 'info["x_velocity"]', "gain", scale=1.0, weight=0.5, optional=True,
                            doc="forward speed"),
                ShapingHint("upright", "abs(next_obs.torso_angle)", "error", scale=0.1, weight=0.2,
                            optional=True, doc="tilt of the torso"),
            ),
        ),
        TaskSpec(
            name="hop-in-place",
            description="Hop up and down in place with the torso upright: jump as high and as often as possible "
                        "without travelling away from the starting point.",
            fitness=hops_in_place,
            fitness_doc="steps (of 1000) with the torso above 1.35 m (standing is 1.25 m: the foot is off the "
                        "ground), tilted less than 0.1 rad, and within 0.5 m of the start (info x_position)",
            solved=200.0,
            reference_reward=HOP_IN_PLACE_REFERENCE,
            sparse_reward=HOP_IN_PLACE_SPARSE,
            hints=(
                ShapingHint("lift", "max(next_obs.torso_height - 1.25, 0.0)", "gain", scale=0.3, weight=1.0,
                            doc="height of the torso above standing"),
                ShapingHint("upright", "abs(next_obs.torso_angle)", "error", scale=0.1, weight=0.5,
                            doc="tilt of the torso"),
                ShapingHint("near_start", 'abs(info["x_position"])', "error", scale=0.5, weight=1.0,
                            doc="distance from the starting point"),
                ShapingHint("drift", "abs(next_obs.torso_x_velocity)", "error", scale=0.5, weight=0.3,
                            optional=True, doc="horizontal speed"),
                ShapingHint("alive", "1.0", "constant", weight=0.5, optional=True, doc="paid every healthy step"),
            ),
        ),
    ),
    hints=(
        ShapingHint("effort", "float(np.sum(np.square(action)))", "error", scale=3.0, weight=0.05, optional=True,
                    doc="sum of squared torques", requires=("continuous_actions",)),
    ),
    # rl-baselines3-zoo ppo.yml, Hopper-v3 (tuned for 1M steps; v5 is the same robot). The budget here, 400
    # updates of 512 steps, is a few minutes a candidate on two CPU cores: enough to stand and start hopping.
    ppo=PPOConfig(
        n_envs=1, n_steps=512, batch_size=32, n_epochs=5, gamma=0.999, gae_lambda=0.99,
        learning_rate=9.80828e-05, clip_range=0.2, ent_coef=0.00229519, vf_coef=0.835671, max_grad_norm=0.7,
        normalize_obs=True, normalize_reward=True, log_std_init=-2.0, ortho_init=False, activation_fn="relu",
        net_arch={"pi": [256, 256], "vf": [256, 256]}, timesteps=204_800, schedule_horizon=1_000_000,
    ),
    extra="mujoco",
)

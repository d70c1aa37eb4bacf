"""HalfCheetah-v5 (MuJoCo): a two-legged planar cat that runs."""

from rewardsmith.episode import Episode
from rewardsmith.spec import EnvSpec, Field, PPOConfig, ShapingHint, TaskSpec, env_reward_fitness

JOINTS = ("back_thigh", "back_shin", "back_foot", "front_thigh", "front_shin", "front_foot")
XML_JOINTS = ("bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot")


def distance_backward(episode: Episode) -> float:
    """Metres travelled backward (towards -x) from the start, by the env's own x_position."""
    infos = episode.infos or []
    if not infos:
        return 0.0
    return float(-infos[-1].get("x_position", 0.0))


RUN_BACKWARD_REFERENCE = '''\
def compute_reward(obs, action, next_obs, info):
    backward = -info["x_velocity"]  # m/s towards -x
    effort = -0.1 * float(sum(a * a for a in action))
    level = -0.1 * abs(next_obs.torso_angle)  # running on its back does not count as running
    total = backward + effort + level
    return total, {"backward": backward, "effort": effort, "level": level}
'''

RUN_BACKWARD_SPARSE = '''\
def compute_reward(obs, action, next_obs, info):
    running = 1.0 if info["x_velocity"] < -1.0 else 0.0
    return running, {"running": running}
'''

RUN_FORWARD_SPARSE = '''\
def compute_reward(obs, action, next_obs, info):
    running = 1.0 if info["x_velocity"] > 1.0 else 0.0
    return running, {"running": running}
'''

SPEC = EnvSpec(
    name="halfcheetah",
    gym_id="HalfCheetah-v5",
    description="A two-dimensional cat-like robot: a torso with a back and a front leg, each a thigh, a shin and a "
                "foot joined by hinges, moving in the x-z plane (x forward, z up). It cannot fall: episodes only "
                "end at the time limit, 1000 steps of 0.05 s (50 s). The env's info holds x_position (m, the "
                "torso's position along x, 0 at reset, not in the observation), x_velocity (m/s, positive "
                "forward) and the parts of its own reward: reward_forward and reward_ctrl.",
    fields=(
        Field("torso_z", 0, "height of the torso relative to its start (rootz)", "m"),
        Field("torso_angle", 1, "pitch of the torso (rooty), 0 level, about +-3.14 on its back", "rad"),
        *(Field(f"{name}_angle", 2 + i, f"angle of the {name.replace('_', ' ')} hinge ({xml})", "rad")
          for i, (name, xml) in enumerate(zip(JOINTS, XML_JOINTS))),
        Field("torso_x_velocity", 8, "forward velocity of the torso (rootx)", "m/s"),
        Field("torso_z_velocity", 9, "vertical velocity of the torso, positive up", "m/s"),
        Field("torso_angular_velocity", 10, "pitch rate of the torso", "rad/s"),
        *(Field(f"{name}_angular_velocity", 11 + i, f"angular velocity of the {name.replace('_', ' ')} hinge",
                "rad/s") for i, name in enumerate(JOINTS)),
    ),
    actions="6 torques in [-1, 1]: action[0] back thigh, action[1] back shin, action[2] back foot, action[3] front "
            "thigh, action[4] front shin, action[5] front foot (actuators bthigh, bshin, bfoot, fthigh, fshin, "
            "ffoot; gears 120, 90, 60, 120, 60, 30).",
    reward_doc="reward_forward (the forward velocity x_velocity, m/s) + reward_ctrl (-0.1 * the sum of squared "
               "actions), every step. Running well forward scores 4800 or more over 1000 steps.",
    terminations=(),
    termination_doc="HalfCheetah never terminates: it cannot fall, and every episode runs to the time limit.",
    tasks=(
        TaskSpec(
            name="run-forward",
            description="Run forward (towards +x) as fast as possible.",
            fitness=env_reward_fitness,
            fitness_doc="the env's own return: the distance run forward (m) / 0.05 s minus the control cost; "
                        "4800 counts as solved (Gymnasium's threshold), which takes about 1M steps of PPO",
            solved=4800.0,
            sparse_reward=RUN_FORWARD_SPARSE,
            default=True,
            hints=(
                ShapingHint("env_reward", 'info["env_reward"]', "gain", scale=3.0, weight=1.0,
                            doc="the env's own reward: forward speed, little effort"),
                ShapingHint("forward", 'info["x_velocity"]', "gain", scale=3.0, weight=0.5, optional=True,
                            doc="forward speed"),
            ),
        ),
        TaskSpec(
            name="run-backward",
            description="Run backward (towards -x) as fast as possible, on the feet, not flipped onto the back.",
            fitness=distance_backward,
            fitness_doc="metres run backward from the start over the 1000-step (50 s) episode, by info "
                        "x_position; 100 (2 m/s on average) counts as solved",
            solved=100.0,
            reference_reward=RUN_BACKWARD_REFERENCE,
            sparse_reward=RUN_BACKWARD_SPARSE,
            hints=(
                ShapingHint("backward", '-info["x_velocity"]', "gain", scale=3.0, weight=1.0,
                            doc="speed towards -x"),
                ShapingHint("level", "abs(next_obs.torso_angle)", "error", scale=1.0, weight=0.1, optional=True,
                            doc="pitch of the torso: flipping onto its back is not running"),
            ),
        ),
    ),
    hints=(
        ShapingHint("effort", "float(np.sum(np.square(action)))", "error", scale=6.0, weight=0.1, optional=True,
                    doc="sum of squared torques", requires=("continuous_actions",)),
    ),
    # rl-baselines3-zoo ppo.yml, HalfCheetah-v3 (tuned for 1M steps). The budget here, 400 updates of 512
    # steps, is a few minutes a candidate on two CPU cores: enough to start running, far from 4800.
    ppo=PPOConfig(
        n_envs=1, n_steps=512, batch_size=64, n_epochs=20, gamma=0.98, gae_lambda=0.92,
        learning_rate=2.0633e-05, clip_range=0.1, ent_coef=0.000401762, vf_coef=0.58096, max_grad_norm=0.8,
        normalize_obs=True, normalize_reward=True, log_std_init=-2.0, ortho_init=False, activation_fn="relu",
        net_arch={"pi": [256, 256], "vf": [256, 256]}, timesteps=204_800, schedule_horizon=1_000_000,
    ),
    extra="mujoco",
)

"""MountainCarContinuous-v0: MountainCar with a continuous throttle and a fuel cost."""

import numpy as np

from rewardsmith.episode import Episode
from rewardsmith.spec import EnvSpec, Field, PPOConfig, ShapingHint, TaskSpec, TerminationCause, env_reward_fitness

GOAL_POSITION = 0.45  # the flag on the right hilltop: the episode ends once the car reaches it
PARK_POSITION = -0.65  # parked high on the left slope: full left throttle holds the car at -0.74 at best
PARK_SPEED = 0.002

# The car's mechanical energy in units of the track height sin(3 * position): gravity pulls with
# 0.0025 * cos(3 * position) per step, so 0.5 * v**2 + 0.0025 / 3 * sin(3 * x) is conserved when coasting.
# -1 at rest on the valley floor, 0 coasts up to position -1.05, about 1 is needed to reach the flag.
ENERGY = "min(math.sin(3.0 * next_obs.position) + 600.0 * next_obs.velocity ** 2, 1.0)"


def steps_parked(episode: Episode) -> float:
    """Steps the car is parked high on the left slope: position <= -0.65 and |velocity| <= 0.002 (at most 999)."""
    position = episode.obs.position[1:]
    velocity = episode.obs.velocity[1:]
    return float(np.sum((position <= PARK_POSITION) & (np.abs(velocity) <= PARK_SPEED)))


PARK_LEFT_REFERENCE = '''\
def compute_reward(obs, action, next_obs, info):
    # close to position -0.7, in the middle of the stretch of slope where the engine can hold the car
    # (linear, so that it pulls the car there from anywhere in the valley)
    near = max(1.0 - abs(next_obs.position + 0.7) / 0.6, 0.0)
    # slow, which only counts close to the spot
    still = near * max(1.0 - abs(next_obs.velocity) / 0.01, 0.0)
    parked = 1.0 if next_obs.position <= -0.65 and abs(next_obs.velocity) <= 0.002 else 0.0
    effort = -0.01 * float(action[0]) ** 2
    # small per-step rewards: with the discount of 0.9999 this env trains with, returns add up over the
    # whole 999-step episode
    total = 0.1 * (near + 0.5 * still + parked) + effort
    return total, {"near": near, "still": still, "parked": parked, "effort": effort}
'''

PARK_LEFT_SPARSE = '''\
def compute_reward(obs, action, next_obs, info):
    parked = 1.0 if next_obs.position <= -0.65 and abs(next_obs.velocity) <= 0.002 else 0.0
    return parked, {"parked": parked}
'''

REACH_FLAG_SPARSE = '''\
def compute_reward(obs, action, next_obs, info):
    reached = 1.0 if info["terminated"] else 0.0
    return reached, {"reached": reached}
'''

SPEC = EnvSpec(
    name="mountaincar-continuous",
    gym_id="MountainCarContinuous-v0",
    description="A car sits at the bottom of a sinusoidal valley between two hills. Its engine is too weak to "
                "drive straight up the right hill to the flag, so it has to rock back and forth to build "
                "momentum; the throttle is continuous and every step costs fuel. The track height is "
                "sin(3 * position); the valley floor is at position -0.52, the track ends at -1.2 on the left "
                "(the car stops dead there) and the flag is at 0.45.",
    fields=(
        Field("position", 0, "position of the car along the track, the valley floor is at -0.52, the flag at 0.45",
              "m", -1.2, 0.6),
        Field("velocity", 1, "velocity of the car, positive to the right", "m/s", -0.07, 0.07),
    ),
    actions="action[0] in [-1, 1] is the throttle: negative pushes the car left, positive right, with a force "
            "of 0.0015 * action[0] per step against gravity of up to 0.0025 on the slopes.",
    reward_doc="-0.1 * action[0] ** 2 every step (fuel), plus +100 on the step the car reaches the flag.",
    terminations=(
        TerminationCause("reached_goal", "the car reaches the flag on the right hilltop (position >= 0.45)",
                         lambda o, info: o.position >= GOAL_POSITION),
    ),
    tasks=(
        TaskSpec(
            name="reach-flag",
            description="Drive the car up the right hill to the flag, spending as little fuel as possible.",
            fitness=env_reward_fitness,
            fitness_doc="the env's own return: 100 for reaching the flag minus 0.1 * the sum of squared throttle",
            solved=90.0,
            sparse_reward=REACH_FLAG_SPARSE,
            default=True,
            hints=(
                ShapingHint("reached", 'info["terminated"]', "flag", weight=10.0,
                            doc="reaching the flag"),
                ShapingHint("step_cost", "1.0", "constant", weight=-0.1,
                            doc="paid every step until the flag: finishing sooner is better"),
                ShapingHint("energy", ENERGY, "gain", scale=1.0, weight=0.05, optional=True,
                            doc="the car's mechanical energy in track-height units, capped at 1: rocking builds it"),
            ),
        ),
        TaskSpec(
            name="park-left",
            description="Park the car high on the LEFT slope, as high as its engine can hold it (position at or "
                        "below -0.65, standing still), and keep it there; do not go over the right hilltop.",
            fitness=steps_parked,
            fitness_doc="steps with position <= -0.65 and |velocity| <= 0.002 over the 999-step episode "
                        "(reaching the flag ends it early); full left throttle holds the car at -0.74 at best, "
                        "so it parks between -0.74 and -0.65; a hand-tuned feedback controller scores about 950, "
                        "full left throttle all the time (no damping) about 48",
            solved=800.0,
            reference_reward=PARK_LEFT_REFERENCE,
            sparse_reward=PARK_LEFT_SPARSE,
            hints=(
                ShapingHint("near", "abs(next_obs.position + 0.7)", "error", scale=0.1, weight=1.0,
                            doc="distance from position -0.7, where the engine can hold the car"),
                ShapingHint("still", "abs(next_obs.velocity)", "error", scale=0.005, weight=0.5,
                            doc="speed: a parked car stands still"),
                ShapingHint("parked", "next_obs.position <= -0.65 and abs(next_obs.velocity) <= 0.002", "flag",
                            weight=1.0, optional=True, doc="the car is parked high on the left slope"),
            ),
        ),
    ),
    hints=(
        ShapingHint("effort", "float(action[0]) ** 2", "error", scale=1.0, weight=0.01, optional=True,
                    doc="squared throttle (the fuel the env's own reward charges for)"),
    ),
    # rl-baselines3-zoo ppo.yml, MountainCarContinuous-v0 (normalize: true; its batch_size 256 is clipped to
    # n_steps * n_envs = 8).
    ppo=PPOConfig(
        n_envs=1, n_steps=8, batch_size=256, n_epochs=10, gamma=0.9999, gae_lambda=0.9,
        learning_rate=7.77e-5, clip_range=0.1, ent_coef=0.00429, vf_coef=0.19, max_grad_norm=5.0,
        use_sde=True, log_std_init=-3.29, ortho_init=False, normalize_obs=True,
        timesteps=20_000,
    ),
)

"""MountainCarContinuous-v0: MountainCar with a continuous throttle and a fuel cost."""

from rewardsmith.episode import Episode
from rewardsmith.spec import EnvSpec, Field, PPOConfig, ShapingHint, TaskSpec, TerminationCause, env_reward_fitness

GOAL_POSITION = 0.45  # the flag on the right hilltop: the episode ends once the car reaches it
MAX_STEPS = 999  # the time limit

# The car's mechanical energy in units of the track height sin(3 * position): gravity pulls with
# 0.0025 * cos(3 * position) per step, so 0.5 * v**2 + 0.0025 / 3 * sin(3 * x) is conserved when coasting.
# -1 at rest on the valley floor, 0 coasts up to position -1.05, about 1 is needed to reach the flag.
ENERGY = "min(math.sin(3.0 * next_obs.position) + 600.0 * next_obs.velocity ** 2, 1.0)"


def race_time(episode: Episode) -> float:
    """Minus the steps taken to reach the flag (-999 if never reached)."""
    return -float(len(episode)) if episode.terminated else -float(MAX_STEPS)


RACE_REFERENCE = '''\
def compute_reward(obs, action, next_obs, info):
    # the flag is all that counts ...
    reached = 100.0 if info["terminated"] and next_obs.position >= 0.45 else 0.0
    # ... and every step it takes costs time; fuel is free
    clock = -0.5
    total = reached + clock
    return total, {"reached": reached, "clock": clock}
'''

RACE_SPARSE = '''\
def compute_reward(obs, action, next_obs, info):
    reached = 1.0 if info["terminated"] and next_obs.position >= 0.45 else 0.0
    return reached, {"reached": reached}
'''

REACH_FLAG_SPARSE = '''\
def compute_reward(obs, action, next_obs, info):
    reached = 1.0 if info["terminated"] and next_obs.position >= 0.45 else 0.0
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
                ShapingHint("effort", "float(action[0]) ** 2", "error", scale=1.0, weight=0.01, optional=True,
                            doc="squared throttle (the fuel the env's own reward charges for)"),
            ),
        ),
        TaskSpec(
            name="race-to-flag",
            description="Reach the flag as quickly as possible; fuel does not matter.",
            fitness=race_time,
            fitness_doc="minus the steps taken to reach the flag (-999 if never reached); a fast run takes "
                        "80 to 110 steps, while the fuel-saving policies the env's own reward teaches take 150 "
                        "to 400",
            solved=-130.0,
            reference_reward=RACE_REFERENCE,
            sparse_reward=RACE_SPARSE,
            hints=(
                ShapingHint("reached", 'info["terminated"]', "flag", weight=100.0,
                            doc="reaching the flag"),
                ShapingHint("clock", "1.0", "constant", weight=-0.5,
                            doc="paid every step until the flag: finishing sooner is better"),
                ShapingHint("energy", ENERGY, "gain", scale=1.0, weight=0.05, optional=True,
                            doc="the car's mechanical energy in track-height units, capped at 1: rocking builds it"),
            ),
        ),
    ),
    # rl-baselines3-zoo ppo.yml, MountainCarContinuous-v0 (normalize: true; its batch_size 256 is clipped to
    # n_steps * n_envs = 8). The zoo trains 20k steps; its tiny exploration noise (log_std -3.29) finds the flag
    # within the first 2k and later training mostly trims fuel, so half the zoo's budget is enough.
    ppo=PPOConfig(
        n_envs=1, n_steps=8, batch_size=256, n_epochs=10, gamma=0.9999, gae_lambda=0.9,
        learning_rate=7.77e-5, clip_range=0.1, ent_coef=0.00429, vf_coef=0.19, max_grad_norm=5.0,
        use_sde=True, log_std_init=-3.29, ortho_init=False, normalize_obs=True,
        timesteps=10_000,
    ),
)

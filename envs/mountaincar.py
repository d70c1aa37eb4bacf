"""MountainCar-v0: drive an underpowered car out of a valley by rocking it back and forth."""

import numpy as np

from rewardsmith.episode import Episode
from rewardsmith.spec import EnvSpec, Field, PPOConfig, ShapingHint, TaskSpec, TerminationCause, env_reward_fitness

GOAL_POSITION = 0.5  # the flag on the right hilltop: the episode ends once the car reaches it
LEFT_HILL = -0.9  # the upper part of the left slope (the track ends at -1.2)

# The car's mechanical energy in units of the track height sin(3 * position): gravity pulls with
# 0.0025 * cos(3 * position) per step, so 0.5 * v**2 + 0.0025 / 3 * sin(3 * x) is conserved when coasting.
# -1 at rest on the valley floor, 0 coasts up to position -1.05, about 1 is needed to reach the flag.
ENERGY = "min(math.sin(3.0 * next_obs.position) + 600.0 * next_obs.velocity ** 2, 1.0)"
SWING = "min(math.sin(3.0 * next_obs.position) + 600.0 * next_obs.velocity ** 2, 0.0) + 1.0"


def steps_on_left_hill(episode: Episode) -> float:
    """Steps with the car at position <= -0.9, high on the left hill (at most 200; reaching the flag ends it)."""
    return float(np.sum(episode.obs.position[1:] <= LEFT_HILL))


LEFT_HILL_REFERENCE = '''\
import math


def compute_reward(obs, action, next_obs, info):
    # paid every step the car is high on the left hill
    on_hill = 1.0 if next_obs.position <= -0.9 else 0.0
    # mechanical energy in units of the track height sin(3 * position): -1 at rest on the valley floor,
    # 0 is enough to coast up to position -1.05; capped there so that more (enough to go over the right
    # hilltop) earns nothing extra
    energy = math.sin(3.0 * next_obs.position) + 600.0 * next_obs.velocity ** 2
    swing = min(energy, 0.0) + 1.0
    total = on_hill + 0.5 * swing
    return total, {"on_hill": on_hill, "swing": swing}
'''

LEFT_HILL_SPARSE = '''\
def compute_reward(obs, action, next_obs, info):
    on_hill = 1.0 if next_obs.position <= -0.9 else 0.0
    return on_hill, {"on_hill": on_hill}
'''

REACH_FLAG_SPARSE = '''\
def compute_reward(obs, action, next_obs, info):
    reached = 1.0 if info["terminated"] and next_obs.position >= 0.5 else 0.0
    return reached, {"reached": reached}
'''

SPEC = EnvSpec(
    name="mountaincar",
    gym_id="MountainCar-v0",
    description="A car sits at the bottom of a sinusoidal valley between two hills. Its engine is too weak to "
                "drive straight up the right hill to the flag, so it has to rock back and forth to build "
                "momentum. The track height is sin(3 * position); the valley floor is at position -0.52, "
                "the track ends at -1.2 on the left (the car stops dead there) and the flag is at 0.5.",
    fields=(
        Field("position", 0, "position of the car along the track, the valley floor is at -0.52, the flag at 0.5",
              "m", -1.2, 0.6),
        Field("velocity", 1, "velocity of the car, positive to the right", "m/s", -0.07, 0.07),
    ),
    actions="0 accelerates the car to the left, 1 does not accelerate, 2 accelerates it to the right "
            "(a push of 0.001 per step against gravity of up to 0.0025 on the slopes).",
    reward_doc="-1 for every step until the car reaches the flag (at most 200 steps).",
    terminations=(
        TerminationCause("reached_goal", "the car reaches the flag on the right hilltop (position >= 0.5)",
                         lambda o, info: o.position >= GOAL_POSITION),
    ),
    tasks=(
        TaskSpec(
            name="reach-flag",
            description="Drive the car up the right hill to the flag as quickly as possible.",
            fitness=env_reward_fitness,
            fitness_doc="the env's own return: minus the steps taken to reach the flag (-200 if never reached)",
            solved=-110.0,
            sparse_reward=REACH_FLAG_SPARSE,
            default=True,
            hints=(
                ShapingHint("step_cost", "1.0", "constant", weight=-1.0,
                            doc="paid every step until the flag, as the env does: finishing sooner is better"),
                ShapingHint("energy", ENERGY, "gain", scale=1.0, weight=0.5,
                            doc="the car's mechanical energy in track-height units, capped at 1: rocking builds it"),
                ShapingHint("reached", 'info["terminated"]', "flag", weight=10.0, optional=True,
                            doc="reaching the flag"),
            ),
        ),
        TaskSpec(
            name="left-hill",
            description="Drive the car up the LEFT hill and spend as much of the episode as possible high on it "
                        "(position at or below -0.9), without going over the right hilltop to the flag.",
            fitness=steps_on_left_hill,
            fitness_doc="steps with position <= -0.9 over the 200-step episode (reaching the flag ends the "
                        "episode early); the car cannot stop that high, so it has to keep rocking back up: "
                        "about 80 is the most possible, a hand-written rocking controller that turns back "
                        "before the right hilltop scores about 45 and rocking straight to the flag about 25",
            solved=40.0,
            timesteps=150_000,
            reference_reward=LEFT_HILL_REFERENCE,
            sparse_reward=LEFT_HILL_SPARSE,
            hints=(
                ShapingHint("on_hill", "next_obs.position <= -0.9", "flag", weight=1.0,
                            doc="the car is high on the left hill"),
                ShapingHint("swing", SWING, "gain", scale=1.0, weight=0.5,
                            doc="mechanical energy from 0 (at rest on the valley floor) to 1 (enough to coast up "
                                "to position -1.05), no more: rocking builds it"),
                ShapingHint("over_the_top", 'info["terminated"]', "flag", weight=-5.0, optional=True,
                            doc="the car went over the right hilltop, which ends the episode"),
            ),
        ),
    ),
    # rl-baselines3-zoo ppo.yml, MountainCar-v0 (normalize: true; batch_size and learning rate are SB3's defaults).
    # The env's own reward is sparse: PPO first reaches the flag after 40k to 100k steps and averages -110
    # after 200k to 350k, so the budget is generous; a shaped reward learns faster.
    ppo=PPOConfig(
        n_envs=16, n_steps=16, batch_size=64, n_epochs=4, gamma=0.99, gae_lambda=0.98,
        learning_rate=3e-4, clip_range=0.2, ent_coef=0.0, normalize_obs=True, normalize_reward=True,
        timesteps=50_000,
    ),
)

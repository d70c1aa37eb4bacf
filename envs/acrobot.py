"""Acrobot-v1: swing a two-link chain, actuated only at the middle joint, until its tip rises above a bar."""

from typing import Any

import gymnasium as gym
import numpy as np

from rewardsmith.episode import Episode
from rewardsmith.spec import EnvSpec, Field, PPOConfig, ShapingHint, TaskSpec, TerminationCause, env_reward_fitness

BAR = 1.0  # the env ends an episode once the tip rises above this height (the pivot is at 0, links are 1 m)

# Height of the free end of the second link above the pivot, from the observation: -cos(t1) - cos(t1 + t2).
TIP_HEIGHT = ("-next_obs.cos_theta1 - (next_obs.cos_theta1 * next_obs.cos_theta2 "
              "- next_obs.sin_theta1 * next_obs.sin_theta2)")


def _tip_height(cos1: Any, sin1: Any, cos2: Any, sin2: Any) -> Any:
    return -cos1 - (cos1 * cos2 - sin1 * sin2)


class IgnoreTermination(gym.Wrapper):
    """Never ends an episode when the tip reaches the bar: it runs on to the 500-step time limit."""

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, _terminated, truncated, info = self.env.step(action)
        return obs, reward, False, truncated, info


def steps_above_bar(episode: Episode) -> float:
    """Steps with the tip above the bar (height > 1.0 above the pivot), out of 500."""
    o = episode.obs
    height = _tip_height(o.cos_theta1[1:], o.sin_theta1[1:], o.cos_theta2[1:], o.sin_theta2[1:])
    return float(np.sum(height > BAR))


KEEP_ABOVE_REFERENCE = '''\
def compute_reward(obs, action, next_obs, info):
    # height of the tip above the pivot, from -2 (hanging straight down) to 2 (straight up)
    c1, s1, c2, s2 = next_obs.cos_theta1, next_obs.sin_theta1, next_obs.cos_theta2, next_obs.sin_theta2
    height = -c1 - (c1 * c2 - s1 * s2)
    above = 1.0 if height > 1.0 else 0.0
    # the height itself pays a little everywhere, so that swinging higher is worth it before the bar is reached
    total = above + 0.25 * height
    return total, {"above": above, "height": height}
'''

KEEP_ABOVE_SPARSE = '''\
def compute_reward(obs, action, next_obs, info):
    c1, s1, c2, s2 = next_obs.cos_theta1, next_obs.sin_theta1, next_obs.cos_theta2, next_obs.sin_theta2
    above = 1.0 if -c1 - (c1 * c2 - s1 * s2) > 1.0 else 0.0
    return above, {"above": above}
'''

SWING_UP_SPARSE = '''\
def compute_reward(obs, action, next_obs, info):
    c1, s1, c2, s2 = next_obs.cos_theta1, next_obs.sin_theta1, next_obs.cos_theta2, next_obs.sin_theta2
    reached = 1.0 if info["terminated"] and -c1 - (c1 * c2 - s1 * s2) > 1.0 else 0.0
    return reached, {"reached": reached}
'''

SPEC = EnvSpec(
    name="acrobot",
    gym_id="Acrobot-v1",
    description="Two links (1 m, 1 kg each) hang in a chain from a fixed pivot; only the joint between them has "
                "a motor. Both start hanging nearly straight down. Swinging the lower link pumps energy into "
                "the chain until its free end (the tip) rises above a bar 1 m above the pivot. theta1 is the "
                "angle of the first link from straight down, theta2 the angle of the second link relative to "
                "the first (0: in line). The tip's height above the pivot is "
                "-cos(theta1) - cos(theta1 + theta2), from -2 (hanging) to 2 (pointing straight up).",
    fields=(
        Field("cos_theta1", 0, "cosine of the first link's angle from straight down (1 hanging, -1 pointing up)",
              "", -1.0, 1.0),
        Field("sin_theta1", 1, "sine of the first link's angle from straight down", "", -1.0, 1.0),
        Field("cos_theta2", 2, "cosine of the second link's angle relative to the first (1 in line)",
              "", -1.0, 1.0),
        Field("sin_theta2", 3, "sine of the second link's angle relative to the first", "", -1.0, 1.0),
        Field("theta1_dot", 4, "angular velocity of the first link", "rad/s", -4 * np.pi, 4 * np.pi),
        Field("theta2_dot", 5, "angular velocity of the second link relative to the first", "rad/s",
              -9 * np.pi, 9 * np.pi),
    ),
    actions="0 applies a torque of -1 N m at the middle joint, 1 applies none, 2 applies +1 N m.",
    reward_doc="-1 for every step the tip is not above the bar, 0 on the step it rises above it (which ends the "
               "episode); an episode lasts at most 500 steps.",
    terminations=(
        TerminationCause("reached_bar", "the tip rises above the bar (-cos(theta1) - cos(theta1 + theta2) > 1)",
                         lambda o, info: float(_tip_height(o.cos_theta1, o.sin_theta1, o.cos_theta2,
                                                           o.sin_theta2)) > BAR),
    ),
    tasks=(
        TaskSpec(
            name="swing-up",
            description="Swing the tip above the bar as quickly as possible.",
            fitness=env_reward_fitness,
            fitness_doc="the env's own return: minus the steps taken to get the tip above the bar (-500 if never)",
            solved=-100.0,
            sparse_reward=SWING_UP_SPARSE,
            default=True,
            hints=(
                ShapingHint("step_cost", "1.0", "constant", weight=-1.0,
                            doc="paid every step until the bar, as the env does: finishing sooner is better"),
                ShapingHint("height", TIP_HEIGHT, "gain", scale=2.0, weight=0.5,
                            doc="height of the tip above the pivot, -2 to 2"),
                ShapingHint("reached", 'info["terminated"]', "flag", weight=10.0, optional=True,
                            doc="the tip reached the bar"),
            ),
        ),
        TaskSpec(
            name="keep-above",
            description="Keep the tip above the bar (height > 1.0 above the pivot) for as many steps as possible; "
                        "reaching the bar does not end the episode in this task.",
            fitness=steps_above_bar,
            fitness_doc="steps (of 500) with the tip above the bar; the episode always runs 500 steps. The chain "
                        "cannot be balanced up there with these torques, so it has to keep swinging the tip "
                        "over the top; the hand-written reference reward reaches 80 to 110 in 100k steps, "
                        "the env's own reward (which pays -1 per step below the bar) stays near 0",
            solved=80.0,
            reference_reward=KEEP_ABOVE_REFERENCE,
            sparse_reward=KEEP_ABOVE_SPARSE,
            wrappers=(IgnoreTermination,),
            terminations=(),
            env_changes="the episode no longer ends when the tip rises above the bar: it always runs to the "
                        "500-step time limit (the env's own reward still pays 0 instead of -1 on every step "
                        "the tip is above the bar, and info[\"terminated\"] is always False)",
            hints=(
                ShapingHint("above", TIP_HEIGHT + " > 1.0", "flag", weight=1.0,
                            doc="the tip is above the bar"),
                ShapingHint("height", TIP_HEIGHT, "gain", scale=2.0, weight=0.25,
                            doc="height of the tip above the pivot, -2 to 2"),
                ShapingHint("spin", "abs(next_obs.theta1_dot)", "error", scale=4 * np.pi, weight=0.1, optional=True,
                            doc="speed of the first link: a slower swing lingers longer at the top"),
            ),
        ),
    ),
    # rl-baselines3-zoo ppo.yml, Acrobot-v1 (normalize: true; batch_size and learning rate are SB3's defaults).
    # The zoo trains 1M steps; the env's own reward reaches -100 after 50k to 60k.
    ppo=PPOConfig(
        n_envs=16, n_steps=256, batch_size=64, n_epochs=4, gamma=0.99, gae_lambda=0.94,
        learning_rate=3e-4, clip_range=0.2, ent_coef=0.0, normalize_obs=True, normalize_reward=True,
        timesteps=100_000,
    ),
)

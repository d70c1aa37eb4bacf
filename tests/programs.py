"""Reward programs for CartPole that several test files share, each with the property tests rely on."""

UPRIGHT = """
import math
def compute_reward(obs, action, next_obs, info):
    upright = math.cos(next_obs.pole_angle)
    return upright, {"upright": upright}
"""
"""Accepted by the critic and trains: the pole's uprightness, one component."""

MISSPELT = """
def compute_reward(obs, action, next_obs, info):
    return next_obs.pole_angel, {}
"""
"""Refused by the critic: ``pole_angel`` is no field of the observation (line 3 of the source)."""

"""PPO throughput with a sandboxed reward, and steps-to-solved of the trainer's defaults vs rl-baselines3-zoo.

Part 1 — steps/s of PPO on CartPole-v1 (zoo hyperparameters, 8 in-process envs, one torch thread):
  (a) the env's own reward, (b) the same reward program as a plain in-process Python gymnasium
  wrapper, (c) the sandboxed candidate reward (rewardsmith's trainer). Runs are interleaved
  a, b, c, a, b, c … and the medians compared, because this machine is noisy.

Part 2 — steps until the mean evaluation fitness first reaches the solved threshold, on the env's
own reward: rewardsmith's trainer with the bundled spec's defaults vs plain SB3 PPO with
rl-baselines3-zoo's tuned hyperparameters (written out below), same seeds, same evaluation.

    python benchmarks/speed.py                # both parts
    python benchmarks/speed.py --part 1 --steps 20000 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rewardsmith.rollouts import record_episodes, score_episodes
from rewardsmith.spec import load_spec
from rewardsmith.training import TrainConfig, build_ppo, train

REWARD = """
import math

def compute_reward(obs, action, next_obs, info):
    upright = math.cos(next_obs.pole_angle)
    centred = -0.1 * abs(next_obs.cart_position)
    alive = 0.0 if info["terminated"] else 1.0
    return alive + 0.5 * upright + centred, {"alive": alive, "upright": upright, "centred": centred}
"""

ZOO = {  # rl-baselines3-zoo hyperparams/ppo.yml
    "CartPole-v1": dict(n_envs=8, n_timesteps=100_000, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98,
                        n_epochs=20, ent_coef=0.0, learning_rate=("lin", 1e-3), clip_range=("lin", 0.2)),
    "Pendulum-v1": dict(n_envs=4, n_timesteps=100_000, n_steps=1024, gae_lambda=0.95, gamma=0.9, n_epochs=10,
                        ent_coef=0.0, learning_rate=1e-3, clip_range=0.2, use_sde=True, sde_sample_freq=4),
}


class PlainReward(gym.Wrapper):
    """What a user without rewardsmith writes: the reward program run in-process on every step."""

    def __init__(self, env: gym.Env, source: str, fields: tuple[str, ...]) -> None:
        super().__init__(env)
        namespace: dict[str, Any] = {}
        exec(compile(source, "<reward>", "exec"), namespace)
        self.compute = namespace["compute_reward"]
        self.view = type("Obs", (), {name: property(lambda self, i=i: self.values[i]) for i, name in
                                     enumerate(fields)} | {"__init__": lambda self, v: setattr(self, "values", v)})
        self.last = None
        self.steps = 0

    def reset(self, **kwargs: Any) -> Any:
        obs, info = self.env.reset(**kwargs)
        self.last, self.steps = obs, 0
        return obs, info

    def step(self, action: Any) -> Any:
        obs, env_reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        step_info = {"env_reward": env_reward, "terminated": terminated, "truncated": truncated, "step": self.steps}
        total, _ = self.compute(self.view(self.last.tolist()), int(action), self.view(obs.tolist()), step_info)
        self.last = obs
        return obs, float(total), terminated, truncated, info


def _time_learn(model: Any, steps: int) -> float:
    started = time.perf_counter()
    model.learn(total_timesteps=steps)
    return steps / (time.perf_counter() - started)


def throughput(steps: int, rounds: int) -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv

    torch.set_num_threads(1)
    spec = load_spec("cartpole")
    task = spec.default_task
    config = TrainConfig(timesteps=steps, seed=0, device="cpu")
    rates: dict[str, list[float]] = {"a": [], "b": [], "c": []}
    for r in range(rounds):
        own = build_ppo(spec, task, None, config)
        rates["a"].append(_time_learn(own.model, steps))
        own.close()
        venv = make_vec_env(lambda: PlainReward(spec.make(task), REWARD, spec.field_names), n_envs=spec.ppo.n_envs,
                            seed=0, vec_env_cls=DummyVecEnv)
        plain = PPO("MlpPolicy", venv, seed=0, device="cpu", verbose=0, **spec.ppo.sb3_kwargs(steps))
        rates["b"].append(_time_learn(plain, steps))
        venv.close()
        boxed = build_ppo(spec, task, REWARD, config)
        rates["c"].append(_time_learn(boxed.model, steps))
        boxed.close()
        print(f"  round {r + 1}: a {rates['a'][-1]:.0f}  b {rates['b'][-1]:.0f}  c {rates['c'][-1]:.0f} steps/s")
    a, b, c = (statistics.median(rates[k]) for k in "abc")
    paired_b = statistics.median(x / y for x, y in zip(rates["b"], rates["a"]))
    paired_c = statistics.median(x / y for x, y in zip(rates["c"], rates["a"]))
    print(f"PPO steps/s on CartPole-v1, {steps} steps x {rounds} rounds (median; ratio: median of per-round ratios):")
    print(f"  (a) env's own reward            {a:8.0f}")
    print(f"  (b) plain Python reward wrapper {b:8.0f}   (b)/(a) = {paired_b:.3f}")
    print(f"  (c) sandboxed candidate reward  {c:8.0f}   (c)/(a) = {paired_c:.3f}")


def _zoo_steps_to_solve(gym_id: str, spec_name: str, seed: int, budget: int, every: int) -> int | None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv

    params = dict(ZOO[gym_id])
    n_envs, horizon = params.pop("n_envs"), params.pop("n_timesteps")
    stretch = budget / horizon
    for key in ("learning_rate", "clip_range"):
        if isinstance(params[key], tuple):
            start = params[key][1]
            params[key] = lambda p, start=start: start * max(1.0 - (1.0 - p) * stretch, 0.0)
    spec = load_spec(spec_name)
    task = spec.default_task
    venv = make_vec_env(gym_id, n_envs=n_envs, seed=seed, vec_env_cls=DummyVecEnv)
    model = PPO("MlpPolicy", venv, seed=seed, device="cpu", verbose=0, **params)
    solved_at: list[int] = []

    class Evaluate(BaseCallback):
        next_at = every

        def _on_step(self) -> bool:
            return not solved_at

        def _on_rollout_end(self) -> None:
            if self.num_timesteps < self.next_at:
                return
            while self.next_at <= self.num_timesteps:
                self.next_at += every
            episodes, _ = record_episodes(lambda o: model.predict(o, deterministic=True)[0], spec, task, 5, 10_000)
            if score_episodes(episodes, task.fitness, task.solved).mean >= task.solved:
                solved_at.append(self.num_timesteps)

    model.learn(total_timesteps=budget, callback=Evaluate())
    venv.close()
    return solved_at[0] if solved_at else None


def _ours_steps_to_solve(spec_name: str, seed: int, budget: int, every: int) -> int | None:
    spec = load_spec(spec_name)
    task = spec.default_task
    config = TrainConfig(timesteps=budget, seed=seed, device="cpu", checkpoints=max(budget // every, 1),
                         eval_episodes=5, final_episodes=5)
    trained = train(spec, task, task.fitness, task.solved, None, config)
    trained.close()
    return trained.result.solved_at


def steps_to_solve(seeds: int) -> None:
    torch.set_num_threads(1)
    # Budgets are whole multiples of the evaluation interval, so both sides evaluate at the same steps.
    cases = [("CartPole-v1", "cartpole", 24 * 2048, 2048), ("Pendulum-v1", "pendulum", 15 * 4096, 4096)]
    for gym_id, name, budget, every in cases:
        ours, zoo = [], []
        for seed in range(seeds):
            ours.append(_ours_steps_to_solve(name, seed, budget, every))
            zoo.append(_zoo_steps_to_solve(gym_id, name, seed, budget, every))
        print(f"{gym_id}: steps until mean fitness >= solved (eval every ~{every} steps, {seeds} seeds, "
              f"budget {budget}):")
        print(f"  rewardsmith defaults   {ours}")
        print(f"  rl-baselines3-zoo PPO  {zoo}")
        solved_ours = [s for s in ours if s is not None]
        solved_zoo = [s for s in zoo if s is not None]
        if solved_ours and solved_zoo:
            ratio = statistics.median(solved_ours) / statistics.median(solved_zoo)
            print(f"  median ratio rewardsmith/zoo = {ratio:.3f}  (solved {len(solved_ours)}/{seeds} vs "
                  f"{len(solved_zoo)}/{seeds})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", type=int, choices=(1, 2))
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    np.set_printoptions(precision=3)
    if args.part in (None, 1):
        throughput(args.steps, args.rounds)
    if args.part in (None, 2):
        steps_to_solve(args.seeds)


if __name__ == "__main__":
    main()

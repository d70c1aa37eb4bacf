"""Does an exported reward train a policy that solves the task, with plain SB3 and no rewardsmith in the loop?

Loads RUN/best/reward.py (the standalone export), wraps the env with its SynthesizedReward, trains
SB3 PPO with the env spec's hyperparameters on several seeds, and scores each final policy with
the run's fitness over 20 evaluation episodes; also prints the env's own reward trained the same
way, side by side.

    python benchmarks/exported_reward.py runs/<run> --timesteps 50000 --seeds 3
"""

from __future__ import annotations

import argparse
import json
import runpy
import time
from pathlib import Path

import torch

from rewardsmith.rollouts import record_episodes, score_episodes
from rewardsmith.task import TaskRef


def train_and_score(task, wrapper, timesteps: int, seed: int) -> tuple[float, float]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    spec, ppo = task.spec, task.spec.ppo

    def make():
        env = spec.make(task.task_spec)
        return wrapper(env) if wrapper is not None else env

    venv = make_vec_env(make, n_envs=ppo.n_envs, seed=seed, vec_env_cls=DummyVecEnv)
    if ppo.normalize_obs:
        venv = VecNormalize(venv, norm_obs=True, norm_reward=False, gamma=ppo.gamma)
    model = PPO("MlpPolicy", venv, seed=seed, device="cpu", verbose=0, **ppo.sb3_kwargs(timesteps))
    started = time.perf_counter()
    model.learn(total_timesteps=timesteps)
    seconds = time.perf_counter() - started

    def policy(obs):
        if ppo.normalize_obs:
            obs = venv.normalize_obs(obs)
        return model.predict(obs, deterministic=True)[0]

    episodes, _ = record_episodes(policy, spec, task.task_spec, 20, seed=30_000)
    venv.close()
    return score_episodes(episodes, task.fitness, task.solved).mean, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--timesteps", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    info = json.loads((args.run / "run.json").read_text())
    task = TaskRef.from_dict(info["task"]).resolve()
    module = runpy.run_path(str(args.run / "best" / "reward.py"))
    timesteps = task.budget(args.timesteps)
    print(f"{task.spec.gym_id}, task {task.task_spec.name}: solved at mean fitness >= {task.solved:g}; "
          f"PPO {timesteps} steps per seed")
    for label, wrapper in (("exported reward", module["SynthesizedReward"]), ("env's own reward", None)):
        scores = []
        for seed in range(args.seeds):
            fitness, seconds = train_and_score(task, wrapper, timesteps, seed)
            scores.append(fitness)
            print(f"  {label:17s} seed {seed}: fitness {fitness:8.2f}  "
                  f"{'solved' if fitness >= task.solved else 'not solved'}  ({seconds:.0f}s)")
        solved = sum(s >= task.solved for s in scores)
        print(f"  {label:17s} mean {sum(scores) / len(scores):8.2f}  solved {solved}/{len(scores)}")


if __name__ == "__main__":
    main()

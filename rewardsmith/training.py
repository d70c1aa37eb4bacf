"""One candidate's short training: reward wrapper, SB3 PPO, checkpoint evaluations.

The story, top to bottom:

1. :class:`DeferredRewardVecEnv` sits between the vector env and PPO. It records every
   transition and hands PPO a zero reward; PPO's own bookkeeping (including the time-limit
   bootstrap it adds to the reward) is untouched.
2. :class:`DeferredRewardBuffer`, PPO's rollout buffer, asks the wrapper for the rewards of the
   whole rollout just before computing advantages, and adds them in. One exchange with the
   sandbox worker per rollout (not per step) is what keeps sandboxing nearly free.
3. A callback evaluates the true fitness about ten times over training and snapshots each
   reward component's statistics (Eureka's reward reflection).
4. :func:`train` wires it together and turns any failure of the reward into a *failed* result.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rewardsmith.episode import Episode
from rewardsmith.results import Checkpoint, TrainingResult
from rewardsmith.rollouts import annotate_components, record_episodes, score_episodes
from rewardsmith.sandbox import Issue, RewardCallError, RewardSandbox, SandboxLimits, Transitions, plain_info
from rewardsmith.seeds import CHECKPOINT_SEED, FINAL_SEED
from rewardsmith.spec import EnvSpec, TaskSpec

if TYPE_CHECKING:
    from rewardsmith.state import SearchConfig
    from rewardsmith.task import ResolvedTask

__all__ = ["PPOSetup", "RungLeg", "TrainConfig", "TrainedPolicy", "build_ppo", "encoded_vec_env", "policy_encoder",
           "train"]


_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class TrainConfig:
    """How one candidate is trained and judged."""

    timesteps: int
    """Environment steps of PPO training."""
    seed: int = 0
    device: str = "auto"
    """Passed to SB3: ``auto`` takes CUDA when present (small MLPs often train faster on CPU)."""
    checkpoints: int = 10
    """Fitness evaluations over training (the learning curve)."""
    eval_episodes: int = 5
    """Episodes per checkpoint evaluation."""
    final_episodes: int = 10
    """Episodes of the final evaluation, whose mean fitness scores the candidate."""
    torch_threads: int = 1
    sandbox: SandboxLimits = field(default_factory=SandboxLimits)
    reward_chunk: int = 1024
    """Transitions per exchange with the sandbox worker."""
    save_policy: bool = True

    @classmethod
    def for_search(cls, config: SearchConfig, budget: int) -> TrainConfig:
        """How the search trains each candidate: ``budget`` steps on the search's seed, as ``config`` says."""
        return cls(timesteps=budget, seed=config.seed, device=config.device, checkpoints=config.checkpoints,
                   eval_episodes=config.eval_episodes, final_episodes=config.final_episodes)

    @classmethod
    def for_evaluation(cls, budget: int, device: str, seed: int) -> TrainConfig:
        """How ``evaluate`` and ``--final-eval`` train each arm on one seed: twice the search's final episodes
        (the means of several seeds are compared), and no policy kept."""
        return cls(timesteps=budget, seed=seed, device=device, checkpoints=10, eval_episodes=5, final_episodes=20,
                   save_policy=False)


@dataclass(frozen=True)
class RungLeg:
    """One leg of a training split into rungs (successive halving).

    The PPO model is always built for the full budget, so its learning-rate schedule and step count are
    those of one training straight through; a leg pauses at ``stop_at`` (a whole number of rollouts) and
    writes everything the next leg needs to ``save_to``: model (policy, optimiser, last observations),
    the env stack (envs mid-episode, normalisation statistics, the deferred-reward wrapper's running sums),
    the curve so far and the global random states. The reward sandbox is not saved: the next leg loads
    the program into a fresh worker (a program's module-level state starts over at each rung).
    """

    stop_at: int | None = None
    """Steps where this leg pauses; None trains on to the full budget."""
    resume_from: Path | None = None
    """The state a previous leg saved; None starts from scratch."""
    save_to: Path | None = None
    """Where to write the state when the leg pauses."""


class _RungEnd(Exception):
    """Raised right after the PPO update that reaches a leg's ``stop_at``: where SB3's loop would go round."""


@dataclass
class TrainedPolicy:
    """A finished training: its result, the final evaluation episodes and the policy itself."""

    result: TrainingResult
    episodes: list[Episode]
    policy: Callable[[np.ndarray], np.ndarray] | None
    stochastic_policy: Callable[[np.ndarray], np.ndarray] | None = None
    sandbox: RewardSandbox | None = None
    """The candidate's sandbox, still loaded, for the analyzer's own rollouts."""
    venv: Any = None

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()
        if self.venv is not None:
            self.venv.close()


class _ComponentStats:
    """Running mean/std/min/max of each reward component's per-step values."""

    def __init__(self) -> None:
        self.count: dict[str, int] = {}
        self.total: dict[str, float] = {}
        self.squares: dict[str, float] = {}
        self.low: dict[str, float] = {}
        self.high: dict[str, float] = {}

    def add(self, rows: list[dict[str, float]]) -> None:
        if not rows:
            return
        names = set().union(*rows)
        for name in names:
            values = np.fromiter((row.get(name, 0.0) for row in rows), dtype=np.float64, count=len(rows))
            self.count[name] = self.count.get(name, 0) + len(values)
            self.total[name] = self.total.get(name, 0.0) + float(values.sum())
            with np.errstate(over="ignore"):  # a reward of 1e300 is refused later; its square is inf here
                self.squares[name] = self.squares.get(name, 0.0) + float(np.square(values).sum())
            self.low[name] = min(self.low.get(name, math.inf), float(values.min()))
            self.high[name] = max(self.high.get(name, -math.inf), float(values.max()))

    def snapshot(self) -> dict[str, dict[str, float]]:
        summary = {}
        for name, count in sorted(self.count.items()):
            mean = self.total[name] / count
            var = max(self.squares[name] / count - mean * mean, 0.0)
            summary[name] = {"mean": mean, "std": math.sqrt(var), "min": self.low[name], "max": self.high[name]}
        self.__init__()  # type: ignore[misc]
        return summary


def _make_deferred_classes() -> tuple[type, type]:
    """Build the SB3 subclasses lazily, so importing this module does not import torch."""
    from stable_baselines3.common.buffers import RolloutBuffer
    from stable_baselines3.common.vec_env import VecEnvWrapper

    class DeferredRewardVecEnv(VecEnvWrapper):
        """Records transitions and pays zero now; :meth:`flush` computes the rollout's rewards in one batch."""

        def __init__(self, venv: Any, sandbox: RewardSandbox, chunk: int, scaler: _ReturnScaler | None = None) -> None:
            super().__init__(venv)
            self.sandbox = sandbox
            self.chunk = chunk
            self.scaler = scaler
            self.pending: list[Transitions] = []
            self.components = _ComponentStats()
            self.shaped_returns: list[float] = []
            self.env_returns: list[float] = []
            self.episode_lengths: list[float] = []
            self._running = np.zeros(self.num_envs)
            self._last_obs: np.ndarray | None = None
            self._actions: np.ndarray | None = None
            self._steps = np.zeros(self.num_envs, dtype=np.int64)

        def __getstate__(self) -> dict[str, Any]:
            """Pickled for a paused rung: the sandbox handle and SB3's cached class attributes stay behind."""
            state = {k: v for k, v in self.__dict__.items() if k not in ("class_attributes", "sandbox")}
            state["sandbox"] = None
            return state

        def __setstate__(self, state: dict[str, Any]) -> None:
            import inspect

            self.__dict__.update(state)
            self.class_attributes = dict(inspect.getmembers(self.__class__))

        def reset(self) -> np.ndarray:
            obs = self.venv.reset()
            self._last_obs = np.array(obs)  # the env's own dtype: float32 images take half the memory
            self._steps[:] = 0
            self._running[:] = 0.0
            self.pending.clear()
            return obs

        def step_async(self, actions: np.ndarray) -> None:
            self._actions = np.array(actions)
            self.venv.step_async(actions)

        def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
            obs, rewards, dones, infos = self.venv.step_wait()
            next_obs = np.array(obs)
            truncated = np.zeros(self.num_envs, dtype=bool)
            extra: list[dict[str, Any]] = []
            for i, info in enumerate(infos):
                if dones[i]:
                    next_obs[i] = info["terminal_observation"]
                    truncated[i] = bool(info.get("TimeLimit.truncated", False))
                    if "episode" in info:
                        self.env_returns.append(float(info["episode"]["r"]))
                        self.episode_lengths.append(float(info["episode"]["l"]))
                extra.append(plain_info(info, step=True) if info else {})
            self._steps += 1
            self.pending.append(Transitions(self._last_obs, self._actions, next_obs,  # type: ignore[arg-type]
                                            np.asarray(rewards, dtype=np.float64), dones & ~truncated, truncated,
                                            self._steps.copy(), extra if any(extra) else None))
            self._steps[dones] = 0
            self._last_obs = np.array(obs)
            return obs, np.zeros_like(rewards), dones, infos

        def flush(self) -> np.ndarray:
            """The candidate reward of every pending step, shaped (steps, envs)."""
            steps, envs = len(self.pending), self.num_envs
            if steps == 0:
                return np.zeros((0, envs))
            batch = Transitions.concatenate(self.pending)
            self.pending.clear()
            totals, rows = self.sandbox.call_chunked(batch, self.chunk)
            self.components.add(rows)
            shaped = totals.reshape(steps, envs)
            dones = (batch.terminated | batch.truncated).reshape(steps, envs)
            for t in range(steps):
                self._running += shaped[t]
                for i in np.flatnonzero(dones[t]):
                    self.shaped_returns.append(float(self._running[i]))
                    self._running[i] = 0.0
            if self.scaler is not None:
                return self.scaler(shaped, dones)
            return shaped

    class DeferredRewardBuffer(RolloutBuffer):
        """PPO's rollout buffer, topped up with the deferred rewards before advantages are computed."""

        reward_source: DeferredRewardVecEnv | None = None

        def compute_returns_and_advantage(self, last_values: Any, dones: np.ndarray) -> None:
            if self.reward_source is not None:
                shaped = self.reward_source.flush()
                if shaped.shape != self.rewards.shape:
                    raise RuntimeError(f"deferred rewards {shaped.shape} do not fit the buffer {self.rewards.shape}")
                peak = float(np.max(np.abs(shaped))) if shaped.size else 0.0
                if peak > _FLOAT32_MAX:
                    raise RewardCallError(Issue("non_finite", f"a reward of {peak:.3g} overflows the 32-bit floats "
                                                              "PPO trains with; keep per-step rewards of order 1-10"))
                self.rewards += shaped.astype(self.rewards.dtype)
            super().compute_returns_and_advantage(last_values, dones)

    return DeferredRewardVecEnv, DeferredRewardBuffer


ONE_HOT_LIMIT = 1024
"""An integer field with at most this many values (a Discrete observation: FrozenLake's 16 cells, Taxi's
500 states) reaches the policy one-hot encoded; wider ranges and images reach it as numbers."""
ONE_HOT_FIELD_SIZE = 64
"""Integer fields of more elements than this (images) are never one-hot encoded."""


def policy_encoder(spec: EnvSpec) -> Callable[[np.ndarray], np.ndarray] | None:
    """What the policy sees of a batch of flat observations: integer fields of small range one-hot encoded
    (as SB3 does for a Discrete observation), everything else as it is; None when nothing needs encoding.

    Reward code, fitness and the analyzer read the values themselves; only the policy's input differs.
    """
    parts: list[tuple[int, int, int, int]] = []  # (start, end, low, count): count 0 = copy the values
    at = 0
    for f in spec.fields:  # in index order, covering the vector
        count = int(f.high - f.low + 1) if f.integer and f.low is not None and f.high is not None else 0
        if 2 < count <= ONE_HOT_LIMIT and f.size <= ONE_HOT_FIELD_SIZE:
            if at < f.index:
                parts.append((at, f.index, 0, 0))
            parts.append((f.index, f.index + f.size, int(f.low), count))
            at = f.index + f.size
    if not parts:
        return None
    width = sum(f.size for f in spec.fields)
    if at < width:
        parts.append((at, width, 0, 0))

    def encode(batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch, dtype=np.float64).reshape(len(batch), -1)
        columns = []
        for start, end, low, count in parts:
            if not count:
                columns.append(batch[:, start:end])
                continue
            values = np.clip(np.rint(batch[:, start:end]).astype(np.int64) - low, 0, count - 1)
            hot = np.zeros((len(batch), end - start, count))
            np.put_along_axis(hot, values[:, :, None], 1.0, axis=2)
            columns.append(hot.reshape(len(batch), -1))
        return np.concatenate(columns, axis=1).astype(np.float32)

    return encode


def encoded_vec_env(venv: Any, encode: Callable[[np.ndarray], np.ndarray]) -> Any:
    """``venv`` with its observations (and terminal observations) passed through ``encode`` for the policy."""
    import gymnasium as gym
    from stable_baselines3.common.vec_env import VecEnvWrapper

    class PolicyObservation(VecEnvWrapper):
        def __init__(self) -> None:
            width = encode(np.zeros((1, *venv.observation_space.shape))).shape[1]
            super().__init__(venv, observation_space=gym.spaces.Box(-np.inf, np.inf, (width,), np.float32))

        def __getstate__(self) -> dict[str, Any]:
            """Pickled for a paused rung: SB3's cached class attributes stay behind."""
            state = {k: v for k, v in self.__dict__.items() if k != "class_attributes"}
            return state

        def __setstate__(self, state: dict[str, Any]) -> None:
            import inspect

            self.__dict__.update(state)
            self.class_attributes = dict(inspect.getmembers(self.__class__))

        def reset(self) -> np.ndarray:
            return encode(self.venv.reset())

        def step_wait(self) -> Any:
            obs, rewards, dones, infos = self.venv.step_wait()
            for info in infos:
                if "terminal_observation" in info:
                    info["terminal_observation"] = encode(info["terminal_observation"][None])[0]
            return encode(obs), rewards, dones, infos

    return PolicyObservation()


class _ReturnScaler:
    """VecNormalize's reward normalisation, applied to a whole rollout of deferred rewards in step order:
    divide by the running standard deviation of the discounted return, then clip."""

    def __init__(self, n_envs: int, gamma: float, clip: float = 10.0, epsilon: float = 1e-8) -> None:
        from stable_baselines3.common.running_mean_std import RunningMeanStd

        self.rms = RunningMeanStd(shape=())
        self.returns = np.zeros(n_envs)
        self.gamma, self.clip, self.epsilon = gamma, clip, epsilon

    def __call__(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        scaled = np.empty_like(rewards)
        for t in range(len(rewards)):
            self.returns = self.returns * self.gamma + rewards[t]
            self.rms.update(self.returns)
            scaled[t] = np.clip(rewards[t] / np.sqrt(self.rms.var + self.epsilon), -self.clip, self.clip)
            self.returns[dones[t]] = 0.0
        return scaled


@dataclass
class PPOSetup:
    """A PPO model wired to its env stack: DummyVecEnv → deferred reward → VecNormalize (if the spec says)."""

    model: Any
    venv: Any
    deferred: Any = None
    vecnorm: Any = None
    sandbox: RewardSandbox | None = None
    encode: Callable[[np.ndarray], np.ndarray] | None = None

    def policy(self, deterministic: bool) -> Callable[[np.ndarray], np.ndarray]:
        """Actions for a batch of raw observations (encoded and normalised as in training)."""

        def act(obs: np.ndarray) -> np.ndarray:
            if self.encode is not None:
                obs = self.encode(obs)
            if self.vecnorm is not None:
                obs = self.vecnorm.normalize_obs(obs)
            actions, _ = self.model.predict(obs, deterministic=deterministic)
            return actions

        return act

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()
        self.venv.close()


def build_ppo(spec: EnvSpec, task: TaskSpec, reward_source: str | None, config: TrainConfig,
              reward_wrapper: Callable[[Any], Any] | None = None) -> PPOSetup:
    """PPO with the spec's hyperparameters on ``reward_source`` (None: the env's own reward, or the reward of
    ``reward_wrapper``, a wrapper put on the training envs only: evaluation episodes record the env's own).

    Raises:
        RewardCallError: the sandbox refused to load the program.
    """
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    torch.set_num_threads(config.torch_threads)
    ppo = spec.ppo
    wrap = reward_wrapper or (lambda env: env)
    venv = make_vec_env(lambda: wrap(spec.make(task)), n_envs=ppo.n_envs, seed=config.seed, vec_env_cls=DummyVecEnv)
    sandbox: RewardSandbox | None = None
    deferred = None
    buffer_class = None
    if reward_source is not None:
        sandbox = RewardSandbox(spec.field_layout, config.sandbox)
        loaded = sandbox.load(reward_source)
        if not loaded.ok:
            sandbox.close()
            venv.close()
            raise RewardCallError(next((i for i in loaded.issues if i.severity == "error"), loaded.issues[-1]))
        deferred_cls, buffer_class = _make_deferred_classes()
        scaler = _ReturnScaler(ppo.n_envs, ppo.gamma) if ppo.normalize_reward else None
        deferred = deferred_cls(venv, sandbox, config.reward_chunk, scaler)
        venv = deferred
    encode = policy_encoder(spec)
    if encode is not None:
        venv = encoded_vec_env(venv, encode)
    vecnorm = None
    if ppo.normalize_obs or (ppo.normalize_reward and deferred is None):
        vecnorm = VecNormalize(venv, norm_obs=ppo.normalize_obs, norm_reward=ppo.normalize_reward and deferred is None,
                               gamma=ppo.gamma)
        venv = vecnorm
    model = PPO("MlpPolicy", venv, seed=config.seed, device=config.device, verbose=0,
                rollout_buffer_class=buffer_class, **ppo.sb3_kwargs(ppo.round_budget(config.timesteps)))
    model.set_logger(Logger(folder=None, output_formats=[]))  # else SB3 makes an empty /tmp/SB3-* per learn()
    if deferred is not None:
        model.rollout_buffer.reward_source = deferred
    return PPOSetup(model, venv, deferred, vecnorm, sandbox, encode)


def _save_leg(path: Path, setup: PPOSetup, checkpoints: list[Checkpoint], next_at: int) -> None:
    """Pickle a paused training (see :class:`RungLeg`); the deferred-reward wrapper leaves its sandbox out."""
    import random

    import cloudpickle
    import torch

    from rewardsmith.runs import atomic_write_bytes

    rng = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
           "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None}
    vecnorm = setup.vecnorm
    data = cloudpickle.dumps({"model": setup.model, "venv": setup.venv, "deferred": setup.deferred,
                              "vecnorm": vecnorm, "checkpoints": checkpoints, "next_at": next_at, "rng": rng,
                              # VecNormalize pickles its statistics only: its inner env and returns ride apart
                              "vecnorm_inner": vecnorm.venv if vecnorm is not None else None,
                              "vecnorm_returns": vecnorm.returns if vecnorm is not None else None})
    atomic_write_bytes(path, data)


def _load_leg(path: Path, fresh: PPOSetup) -> tuple[PPOSetup, list[Checkpoint], int, dict[str, Any]]:
    """The paused training saved at ``path``, wired to ``fresh``'s sandbox (``fresh``'s own envs are closed)."""
    import cloudpickle

    with open(path, "rb") as handle:
        saved = cloudpickle.load(handle)
    fresh.venv.close()
    deferred = saved["deferred"]
    if deferred is not None:
        deferred.sandbox = fresh.sandbox
    vecnorm = saved["vecnorm"]
    if vecnorm is not None:
        import inspect

        vecnorm.venv = saved["vecnorm_inner"]
        vecnorm.class_attributes = dict(inspect.getmembers(vecnorm.__class__))
        vecnorm.returns = saved["vecnorm_returns"]
    setup = PPOSetup(saved["model"], saved["venv"], deferred, vecnorm, fresh.sandbox, fresh.encode)
    return setup, saved["checkpoints"], saved["next_at"], saved["rng"]


def _restore_rng(rng: dict[str, Any]) -> None:
    import random

    import torch

    torch.set_rng_state(rng["torch"])
    if rng.get("cuda") is not None:
        torch.cuda.set_rng_state_all(rng["cuda"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])


def train(
    resolved: ResolvedTask,
    reward_source: str | None,
    config: TrainConfig,
    policy_dir: Path | None = None,
    on_checkpoint: Callable[[Checkpoint], None] | None = None,
    leg: RungLeg | None = None,
    reward_wrapper: Callable[[Any], Any] | None = None,
) -> TrainedPolicy:
    """Train PPO on ``reward_source`` (None: the env's own reward) for ``resolved`` and judge it by its fitness.

    A reward that raises, returns something invalid or times out mid-training makes the result
    *failed*, with the reason and every checkpoint recorded up to then. With ``leg``, the training runs
    (or continues) only up to ``leg.stop_at`` steps, then is judged as if it had ended there; its state is
    saved so that a later leg ends exactly where one training straight through would. ``reward_wrapper`` (with
    ``reward_source`` None) replaces the env's reward on the training envs, never on the evaluation episodes.
    """
    from stable_baselines3.common.callbacks import BaseCallback

    spec, task, fitness, solved = resolved.spec, resolved.task_spec, resolved.fitness, resolved.solved
    started = time.monotonic()
    try:
        setup = build_ppo(spec, task, reward_source, config, reward_wrapper)
    except RewardCallError as exc:
        return TrainedPolicy(TrainingResult("failed", -math.inf, reason=exc.issue), [], None)
    leg = leg or RungLeg()
    checkpoints: list[Checkpoint] = []
    budget = spec.ppo.round_budget(config.timesteps)  # whole rollouts: what SB3 runs, so what is reported
    every = max(budget // max(config.checkpoints, 1), 1)
    next_at = every
    rng: dict[str, Any] | None = None
    if leg.resume_from is not None:
        setup, checkpoints, next_at, rng = _load_leg(leg.resume_from, setup)
    model, deferred, vecnorm, sandbox, act = setup.model, setup.deferred, setup.vecnorm, setup.sandbox, setup.policy

    def evaluate_now() -> None:
        episodes, _ = record_episodes(act(True), spec, task, config.eval_episodes, CHECKPOINT_SEED)
        summary = score_episodes(episodes, fitness, solved)
        checkpoint = Checkpoint(
            step=int(model.num_timesteps), fitness=summary.mean, fitness_std=summary.std,
            success_rate=summary.success_rate, episode_length=summary.episode_length,
            shaped_return=_mean_and_clear(deferred.shaped_returns) if deferred else None,
            env_return=_mean_and_clear(deferred.env_returns) if deferred else _monitor_returns(model),
            components=deferred.components.snapshot() if deferred else {},
            train_episode_length=_mean_and_clear(deferred.episode_lengths) if deferred else None,
        )
        checkpoints.append(checkpoint)
        if on_checkpoint is not None:
            on_checkpoint(checkpoint)

    class Checkpoints(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next_at = next_at

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            if self.num_timesteps >= self.next_at:
                evaluate_now()
                while self.next_at <= self.num_timesteps:
                    self.next_at += every

    reason: Issue | None = None
    callback = Checkpoints()
    if leg.stop_at is not None:  # pause right after the update that reaches stop_at, before any next step
        update = model.train

        def update_then_pause() -> None:
            update()
            if model.num_timesteps >= leg.stop_at:
                raise _RungEnd

        model.train = update_then_pause
    try:
        try:
            if rng is not None:
                _restore_rng(rng)
            model.learn(total_timesteps=budget - model.num_timesteps, callback=callback,
                        reset_num_timesteps=leg.resume_from is None)
        except _RungEnd:
            model.__dict__.pop("train")
            if leg.save_to is not None:
                _save_leg(leg.save_to, setup, checkpoints, callback.next_at)
        finally:
            model.__dict__.pop("train", None)
        if not checkpoints or checkpoints[-1].step < model.num_timesteps:
            evaluate_now()
    except RewardCallError as exc:
        reason = exc.issue
    except (FloatingPointError, ValueError) as exc:  # NaN in the policy: a reward scaled beyond what PPO takes
        reason = Issue("runtime_error", f"training diverged: {type(exc).__name__}: {exc}")

    episodes: list[Episode] = []
    if reason is None:
        episodes, _ = record_episodes(act(True), spec, task, config.final_episodes, FINAL_SEED)
        if sandbox is not None:
            try:
                annotate_components(episodes, sandbox)
            except RewardCallError as exc:
                reason = exc.issue
    summary = score_episodes(episodes, fitness, solved) if episodes and reason is None else None
    policy_file = None
    if reason is None and policy_dir is not None and config.save_policy:
        policy_dir.mkdir(parents=True, exist_ok=True)
        model.save(policy_dir / "policy.zip")
        policy_file = "policy.zip"
        if vecnorm is not None:
            vecnorm.save(str(policy_dir / "vecnormalize.pkl"))
    if sandbox is not None and reason is not None:
        sandbox.close()
        sandbox = None
    solved_at = next((c.step for c in checkpoints if c.fitness >= solved), None)
    result = TrainingResult(
        status="scored" if summary is not None else "failed",
        fitness=summary.mean if summary else -math.inf,
        fitness_std=summary.std if summary else 0.0,
        success_rate=summary.success_rate if summary else 0.0,
        episode_length=summary.episode_length if summary else 0.0,
        checkpoints=checkpoints,
        steps=int(model.num_timesteps),
        seconds=time.monotonic() - started,
        reason=reason,
        solved_at=solved_at,
        policy_file=policy_file,
    )
    ok = reason is None
    return TrainedPolicy(result, episodes, act(True) if ok else None, act(False) if ok else None, sandbox,
                         setup.venv)


def _mean_and_clear(values: list[float]) -> float | None:
    if not values:
        return None
    mean = float(np.mean(values))
    values.clear()
    return mean


def _monitor_returns(model: Any) -> float | None:
    buffer = getattr(model, "ep_info_buffer", None)
    if not buffer:
        return None
    return float(np.mean([info["r"] for info in buffer]))


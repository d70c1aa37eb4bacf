"""PPO settings given by the user: ``--ppo key=value`` and ``--hyperparams FILE`` (rl-baselines3-zoo's YAML).

Both become one plain dict of :class:`~rewardsmith.spec.PPOConfig` field names to values (JSON-safe, so a
run records it in ``run.json``), which :func:`apply_overrides` lays over a spec's own settings. The zoo's
spellings are understood: ``normalize`` (a bool or ``"dict(norm_obs=..., norm_reward=...)"``),
``learning_rate: lin_3e-4``, ``clip_range: lin_0.2``, ``n_timesteps`` (the schedules' horizon) and
``policy_kwargs: "dict(log_std_init=-2, ortho_init=False, activation_fn=nn.ReLU, net_arch=dict(pi=[256], vf=[256]))"``.
Strings are read with :func:`ast.literal_eval` and a small reader for ``dict(...)`` calls; nothing is evaluated.
"""

from __future__ import annotations

import ast
import math
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from rewardsmith.errors import UsageError
from rewardsmith.spec import ACTIVATIONS, PPOConfig

__all__ = ["apply_overrides", "parse_ppo_options", "read_zoo_file", "settings_from"]

_INT = {"n_envs", "n_steps", "batch_size", "n_epochs", "sde_sample_freq", "timesteps", "schedule_horizon"}
_FLOAT = {"gamma", "gae_lambda", "learning_rate", "clip_range", "ent_coef", "vf_coef", "max_grad_norm", "log_std_init"}
_BOOL = {"linear_lr", "linear_clip", "use_sde", "normalize_obs", "normalize_reward", "ortho_init"}
_POSITIVE = {"n_envs", "n_steps", "batch_size", "n_epochs", "learning_rate", "clip_range", "timesteps",
             "schedule_horizon", "max_grad_norm"}
_UNIT = {"gamma", "gae_lambda"}
_IGNORED_ZOO_KEYS = {"policy"}  # 'MlpPolicy' is the only policy rewardsmith trains; checked below


def parse_ppo_options(pairs: list[str]) -> dict[str, Any]:
    """``--ppo key=value`` options (values read as Python/JSON literals, else as text) as settings.

    Raises:
        UsageError: an option without ``=``, an unknown key, or a value of the wrong kind.
    """
    raw: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--ppo takes key=value, got {pair!r}")
        raw[key.strip()] = _literal(text.strip())
    return settings_from(raw, "--ppo")


def read_zoo_file(path: Path, gym_id: str) -> dict[str, Any]:
    """The settings for ``gym_id`` in an rl-baselines3-zoo hyperparameter file.

    The entry is the one named ``gym_id``, else one with the same name and another version
    (``Hopper-v3`` for ``Hopper-v5``), else the file's only entry.

    Raises:
        UsageError: the file is missing, not YAML, holds no entry for the env, or an entry is invalid.
    """
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"hyperparameter file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise UsageError(f"hyperparameter file {path} is not readable YAML: {reason}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()) or not data:
        raise UsageError(f"hyperparameter file {path} must map env ids to settings, as rl-baselines3-zoo's do")
    base = gym_id.rsplit("-v", 1)[0]
    entry = data.get(gym_id)
    if entry is None:
        same_name = [k for k in data if str(k).rsplit("-v", 1)[0] == base]
        if len(same_name) == 1:
            entry = data[same_name[0]]
        elif len(data) == 1:
            entry = next(iter(data.values()))
    if entry is None:
        ids = ", ".join(repr(str(k))[:60] for k in list(data)[:10])
        raise UsageError(f"hyperparameter file {path} has no entry for {gym_id} (it has {ids})")
    return settings_from(entry, f"hyperparameter file {path}")


def settings_from(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """Zoo-style or PPOConfig-style settings as PPOConfig field names and checked, JSON-safe values.

    Raises:
        UsageError: an unknown key or a value of the wrong kind.
    """
    known = {f.name for f in fields(PPOConfig)}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        key = str(key)
        if isinstance(value, str) and key in ("normalize", "policy_kwargs", "net_arch"):
            value = _read_call(value, where, key)
        if key in _IGNORED_ZOO_KEYS:
            if value != "MlpPolicy":
                raise UsageError(f"{where}: policy {value!r} is not supported; rewardsmith trains an MlpPolicy")
        elif key == "normalize":
            if isinstance(value, dict):
                out["normalize_obs"] = bool(value.get("norm_obs", True))
                out["normalize_reward"] = bool(value.get("norm_reward", True))
            else:
                out["normalize_obs"] = out["normalize_reward"] = _check("normalize", value, where, bool)
        elif key == "n_timesteps":
            out["schedule_horizon"] = _check("schedule_horizon", value, where, int)
        elif key in ("learning_rate", "clip_range") and isinstance(value, str) and value.startswith("lin_"):
            out[key] = _check(key, _literal(value[4:]), where, float)
            out["linear_lr" if key == "learning_rate" else "linear_clip"] = True
        elif key == "policy_kwargs":
            if not isinstance(value, dict):
                raise UsageError(f"{where}: policy_kwargs must be a dict, got {_short(value)}")
            out.update(settings_from(value, where))
        elif key == "activation_fn":
            name = str(value).removeprefix("nn.").removeprefix("torch.nn.").lower().replace("leakyrelu", "leaky_relu")
            if name not in ACTIVATIONS:
                raise UsageError(f"{where}: activation_fn {_short(value)} is not one of {', '.join(ACTIVATIONS)}")
            out["activation_fn"] = name
        elif key == "net_arch":
            out["net_arch"] = _check_net_arch(value, where)
        elif key in known:
            kind = int if key in _INT else float if key in _FLOAT else bool if key in _BOOL else None
            if kind is None:
                raise UsageError(f"{where}: {key} cannot be set here")
            if key in ("log_std_init", "schedule_horizon") and value is None:
                out[key] = None
            else:
                out[key] = _check(key, value, where, kind)
        else:
            raise UsageError(f"{where}: unknown PPO setting {_short(key)} (known: {', '.join(sorted(known))}, "
                             "and the zoo's normalize, n_timesteps, policy, policy_kwargs)")
    return out


def apply_overrides(ppo: PPOConfig, overrides: dict[str, Any] | None) -> PPOConfig:
    """``ppo`` with ``overrides`` (from :func:`settings_from`) laid over it.

    Raises:
        UsageError: an override is invalid (recorded overrides are checked again when a run resumes).
    """
    if not overrides:
        return ppo
    return replace(ppo, **settings_from(overrides, "PPO settings"))


def _check(key: str, value: Any, where: str, kind: type) -> Any:
    if kind is bool:
        if not isinstance(value, bool):
            raise UsageError(f"{where}: {key} must be true or false, got {_short(value)}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"{where}: {key} must be a number, got {_short(value)}")
    if kind is int:
        if float(value) != int(value):
            raise UsageError(f"{where}: {key} must be a whole number, got {_short(value)}")
        value = int(value)
    else:
        value = float(value)
    if key in _POSITIVE and value <= 0:
        raise UsageError(f"{where}: {key} must be positive, got {value}")
    if key in _UNIT and not 0 < value <= 1:
        raise UsageError(f"{where}: {key} must be in (0, 1], got {value}")
    if key == "batch_size" and value < 2:
        raise UsageError(f"{where}: batch_size must be at least 2, got {value}")
    return value


def _check_net_arch(value: Any, where: str) -> Any:
    def layers(v: Any) -> list[int]:
        if not isinstance(v, (list, tuple)) or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0
                                                      for n in v):
            raise UsageError(f"{where}: net_arch takes lists of positive layer sizes, got {_short(value)}")
        return list(v)

    if isinstance(value, dict):
        if not set(value) <= {"pi", "vf"}:
            raise UsageError(f"{where}: net_arch's keys are pi and vf, got {_short(value)}")
        return {k: layers(v) for k, v in value.items()}
    return layers(value)


def _literal(text: str) -> Any:
    """A literal (number, bool, list, dict, quoted text; ``true``/``false``/``null`` as in JSON), else the text."""
    lowered = {"true": True, "false": False, "null": None, "none": None}
    if text.lower() in lowered:
        return lowered[text.lower()]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def _read_call(text: str, where: str, key: str) -> Any:
    """Read ``dict(a=1, b=[2, 3])``-style text: literals, ``dict(...)`` calls and dotted names (as text)."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
        return _node_value(tree.body)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise UsageError(f"{where}: cannot read {key} {_short(text)}: {exc}") from None


def _node_value(node: ast.AST) -> Any:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        if any(kw.arg is None for kw in node.keywords):
            raise ValueError("dict(**...) is not supported")
        return {kw.arg: _node_value(kw.value) for kw in node.keywords}
    if isinstance(node, ast.Dict):
        return {_node_value(k): _node_value(v) for k, v in zip(node.keys, node.values) if k is not None}
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_node_value(e) for e in node.elts]
    if isinstance(node, ast.Attribute) and isinstance(node.value, (ast.Name, ast.Attribute)):
        return f"{_node_value(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return {"True": True, "False": False, "None": None}.get(node.id, node.id)
    return ast.literal_eval(node)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

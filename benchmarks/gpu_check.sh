#!/usr/bin/env bash
# Train one candidate (the env's own reward, same seed) on cuda and on cpu; print both throughputs.
#
#   benchmarks/gpu_check.sh [ENV] [TIMESTEPS] [NET]     e.g. benchmarks/gpu_check.sh pendulum 20000 256,256
#
# NET is the policy's hidden layers (default: the spec's). Small MLPs on classic-control envs are often
# faster on the CPU (every step pays a host-device transfer); wide nets and image observations favour the GPU.
# On a machine where torch sees no CUDA device it says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
exec "$PYTHON" - "${1:-cartpole}" "${2:-20000}" "${3:-}" <<'PY'
import sys

import torch

from rewardsmith.task import TaskRef
from rewardsmith.training import TrainConfig, train

env, timesteps, net = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if not torch.cuda.is_available():
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
    print(f"no CUDA device visible to torch {torch.__version__} ({build}): nothing to compare on this machine")
    sys.exit(0)
ppo = {"net_arch": [int(n) for n in net.split(",")]} if net else None
task = TaskRef(env, "gpu check", ppo=ppo).resolve() if ppo else TaskRef(env, "gpu check").resolve()
torch.set_num_threads(1)  # as a training worker runs
print(f"{env}: {task.budget(timesteps)} steps, net {net or 'spec default'}, GPU {torch.cuda.get_device_name(0)}")
rates = {}
for device in ("cuda", "cpu"):
    config = TrainConfig(timesteps=task.budget(timesteps), seed=0, device=device, checkpoints=2, eval_episodes=2,
                         final_episodes=2, save_policy=False)
    trained = train(task.spec, task.task, task.fitness, task.solved, None, config)
    trained.close()
    result = trained.result
    rates[device] = result.steps_per_second
    print(f"{device:>4}: {result.steps_per_second:8.0f} steps/s  ({result.seconds:.1f} s, fitness {result.fitness:.4g})")
print(f"cuda / cpu: {rates['cuda'] / rates['cpu']:.2f}x")
PY

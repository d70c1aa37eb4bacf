'''Realistic LLM replies for CartPole, good and bad, as the scripted server sends them.

``GOOD`` holds ten styles a real model writes (each must be accepted and trained); ``BAD`` holds
replies the search must refuse, each with the issue code it must be refused with.
'''

from __future__ import annotations

GOOD: dict[str, str] = {}

GOOD["python_fence"] = """\
I reward the pole for staying upright and the cart for staying near the centre, with a small \
bonus for every step survived.

```python
import math


def compute_reward(obs, action, next_obs, info):
    upright = math.cos(next_obs.pole_angle * 7.5)
    centred = -0.1 * abs(next_obs.cart_position)
    alive = 0.0 if info["terminated"] else 1.0
    total = upright + centred + alive
    return total, {"upright": upright, "centred": centred, "alive": alive}
```

The cosine falls to zero at the 12-degree limit, so the reward vanishes where the episode ends.
"""

GOOD["py_fence"] = """\
Here is a compact reward:

```py
import numpy as np

def compute_reward(obs, action, next_obs, info):
    angle_term = float(np.exp(-abs(next_obs.pole_angle) / 0.1))
    velocity_term = -0.01 * next_obs.pole_angular_velocity ** 2
    return angle_term + velocity_term, {"angle": angle_term, "spin": velocity_term}
```
"""

GOOD["bare_fence"] = """\
Reward: stay alive, keep the angle small.

```
def compute_reward(obs, action, next_obs, info):
    if info["terminated"]:
        fall = -1.0
    else:
        fall = 0.0
    balance = 1.0 - abs(next_obs.pole_angle) / 0.2095
    return balance + fall, {"balance": balance, "fall": fall}
```
"""

GOOD["split_blocks"] = """\
Let me define the constants first.

```python
import math

ANGLE_LIMIT = 0.2095
TRACK_LIMIT = 2.4
```

Then a helper that turns an error into a bonus:

```python
def bonus(error, scale):
    return math.exp(-error / scale)
```

And the reward itself:

```python
def compute_reward(obs, action, next_obs, info):
    upright = bonus(abs(next_obs.pole_angle), ANGLE_LIMIT / 2)
    centred = 0.3 * bonus(abs(next_obs.cart_position), TRACK_LIMIT / 2)
    return upright + centred, {"upright": upright, "centred": centred}
```

You can try it like this:

```python
total, parts = compute_reward(None, 1, obs, {"terminated": False})
print(total, parts)
```
"""

GOOD["unfenced"] = """\
Here's a reward that keeps the pole vertical.

import math

SCALE = 0.1

def compute_reward(obs, action, next_obs, info):
    upright = math.exp(-abs(next_obs.pole_angle) / SCALE)
    still = -0.05 * abs(next_obs.cart_velocity)
    return upright + still, {"upright": upright, "still": still}

This pays most when the pole is straight up and slightly penalises a moving cart.
"""

GOOD["think_section"] = """\
<think>
The user wants the pole upright. A first idea:

```python
def compute_reward(obs, action, next_obs, info):
    return -next_obs.pole_angle ** 2
```

But that returns a bare number and ignores the cart. I should return components too, and keep
the cart away from the track edges. Maybe something like reward = cos(angle) - 0.1*|x|.
</think>

I combine an uprightness term with a gentle centring term.

```python
import math

def compute_reward(obs, action, next_obs, info):
    upright = math.cos(next_obs.pole_angle)
    centred = -0.1 * abs(next_obs.cart_position)
    return upright + centred, {"upright": upright, "centred": centred}
```
"""

GOOD["helpers_typing"] = '''\
```python
"""Reward for balancing the pole on CartPole."""
from typing import Dict, Tuple

import numpy as np

ANGLE_SCALE: float = 0.1
POSITION_SCALE: float = 1.0
WEIGHTS: Dict[str, float] = {"upright": 1.0, "centred": 0.2}


def smooth_bonus(error: float, scale: float) -> float:
    """A bonus of 1 at zero error that fades smoothly."""
    return float(np.exp(-(error / scale) ** 2))


def compute_reward(obs, action, next_obs, info) -> Tuple[float, Dict[str, float]]:
    components: Dict[str, float] = {
        "upright": WEIGHTS["upright"] * smooth_bonus(abs(next_obs.pole_angle), ANGLE_SCALE),
        "centred": WEIGHTS["centred"] * smooth_bonus(abs(next_obs.cart_position), POSITION_SCALE),
    }
    return sum(components.values()), components
```
'''

GOOD["numpy_scalars"] = """\
The reward below works with numpy throughout:

```python
import numpy as np

def compute_reward(obs, action, next_obs, info):
    angle = np.float32(next_obs.pole_angle)
    upright = np.clip(1.0 - np.abs(angle) / 0.2095, 0.0, 1.0)
    centred = -0.1 * np.square(next_obs.cart_position)
    total = np.float64(upright + centred)
    return total, {"upright": np.float64(upright), "centred": np.float64(centred)}
```
"""

GOOD["indexing"] = """\
Using the raw observation indices (0: cart position, 2: pole angle, 3: angular velocity):

```python
import math

def compute_reward(obs, action, next_obs, info):
    x, theta, theta_dot = next_obs[0], next_obs[2], next_obs[3]
    upright = 1.0 - (theta / 0.2095) ** 2
    damping = -0.05 * abs(theta_dot)
    centred = -0.05 * abs(x)
    return upright + damping + centred, {"upright": upright, "damping": damping, "centred": centred}
```
"""

GOOD["tilde_main_guard"] = """\
Solution:

~~~python
import math

def upright_bonus(angle):
    return math.exp(-abs(angle) / 0.08)

def compute_reward(obs, action, next_obs, info):
    upright = upright_bonus(next_obs.pole_angle)
    progress = 0.001 * info["step"]
    return upright + progress, {"upright": upright, "progress": progress}

if __name__ == "__main__":
    class Obs:
        pole_angle = 0.01
    print(compute_reward(None, 0, Obs(), {"step": 3}))
~~~
"""

assert len(GOOD) == 10

GOOD_PROGRAM = """\
```python
import math

def compute_reward(obs, action, next_obs, info):
    upright = math.cos(next_obs.pole_angle)
    return upright, {"upright": upright}
```
"""
"""A plain correct reply, used as the answer to repair requests."""


def variant(n: int) -> str:
    """GOOD_PROGRAM with its own scale: a different program for each ``n``, where samples must differ
    (identical samples of a round are asked again and trained once)."""
    return GOOD_PROGRAM.replace("upright = math.cos(", f"upright = {1 + n / 100:g} * math.cos(")

BAD: dict[str, tuple[str, str, str]] = {
    # name: (reply, finish_reason, the issue code it must be refused with)
    "torch": ("""\
```python
import torch

def compute_reward(obs, action, next_obs, info):
    angle = torch.tensor(next_obs.pole_angle)
    upright = float(torch.cos(angle))
    return upright, {"upright": upright}
```
""", "stop", "forbidden_import"),
    "wrong_signature": ("""\
```python
def compute_reward(state, action):
    upright = 1.0 - abs(state[2])
    return upright, {"upright": upright}
```
""", "stop", "bad_signature"),
    "division_by_zero": ("""\
```python
def compute_reward(obs, action, next_obs, info):
    moved = next_obs.cart_position - obs.cart_position
    ratio = next_obs.pole_angle / (moved - moved)
    return ratio, {"ratio": ratio}
```
""", "stop", "runtime_error"),
    "file_access": ("""\
```python
def compute_reward(obs, action, next_obs, info):
    with open("/tmp/reward_log.txt", "a") as log:
        log.write(str(next_obs.pole_angle))
    upright = 1.0 - abs(next_obs.pole_angle)
    return upright, {"upright": upright}
```
""", "stop", "forbidden_name"),
    "endless_loop": ("""\
```python
def compute_reward(obs, action, next_obs, info):
    total = 0.0
    while True:
        total += abs(next_obs.pole_angle)
    return total, {"total": total}
```
""", "stop", "timeout"),
    "truncated": ("""\
I will write a reward with three terms: uprightness, centring and a survival bonus, each carefully

```python
import math

ANGLE_SCALE = 0.1

def compute_reward(obs, action, next_obs, info):
    upright = math.exp(-abs(next_obs.pole_angle) / ANGLE_SCALE)
    centred = -0.1 * abs(next_obs.cart_posi""", "length", "truncated"),
    "unknown_field": ("""\
```python
def compute_reward(obs, action, next_obs, info):
    height = next_obs.pole_tip_height
    return height, {"height": height}
```
""", "stop", "unknown_field"),
    "prose_only": ("""\
To balance the pole you should reward small pole angles and penalise the cart for drifting away \
from the centre. A survival bonus also helps. Weight the angle term most heavily.
""", "stop", "no_code"),
    "non_numeric_return": ("""\
```python
def compute_reward(obs, action, next_obs, info):
    if abs(next_obs.pole_angle) < 0.05:
        return "high", {"upright": 1.0}
    return "low", {"upright": 0.0}
```
""", "stop", "bad_return"),
    "dunder_walk": ("""\
```python
def compute_reward(obs, action, next_obs, info):
    classes = ().__class__.__base__.__subclasses__()
    upright = 1.0 - abs(next_obs.pole_angle)
    return upright, {"upright": upright}
```
""", "stop", "restricted"),
}

"""The attack suite: hostile reward programs end to end, and legitimate ones as controls.

Every attack must be refused with a stable issue code and a message that says why, write
nothing anywhere (a canary directory, the worker's working directory, the host's working and
temporary directories all stay empty), and leak no environment variable of the host (which
holds fake API keys for the whole module). Every control must be accepted and give the same
numbers as the same program run as plain Python: a suite that passes because everything is
refused proves nothing.

One sandbox serves the module; an attack that gets its worker killed (a timeout) is followed by
a fresh worker, started by the next load.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rewardsmith.sandbox import CODES, Issue, RewardCallError, RewardSandbox, SandboxLimits, Transitions
from rewardsmith.sandbox.views import make_view_class

FIELDS = ["cart_position", "cart_velocity", "pole_angle", "pole_angular_velocity"]
SECRETS = {
    "OPENAI_API_KEY": "sk-test-secret-attack-suite",
    "AWS_SECRET_ACCESS_KEY": "aws-test-secret-attack-suite",
    "ANTHROPIC_API_KEY": "ant-test-secret-attack-suite",
    "HF_TOKEN": "hf_test_secret_attack_suite",
}
LIMITS = SandboxLimits(call_timeout=0.5, timeout_per_transition=0.0, kill_grace=0.5, load_timeout=1.0)


def program(body: str, top: str = "") -> str:
    return ("import math\nimport numpy as np\n" + textwrap.dedent(top)
            + "\ndef compute_reward(obs, action, next_obs, info):\n" + textwrap.indent(textwrap.dedent(body), "    "))


@dataclass(frozen=True)
class Attack:
    id: str
    category: str
    source: str
    codes: tuple[str, ...]
    """Acceptable issue codes (one, except where the machine's speed decides: copying a string of
    hundreds of MB may hit the memory cap or the deadline first)."""
    says: str
    """A fragment the refusal message must contain (case-insensitive)."""


def attack(id: str, category: str, source: str, codes: str | tuple[str, ...], says: str) -> Attack:
    return Attack(id, category, source, (codes,) if isinstance(codes, str) else codes, says)


A = attack
ATTACKS = [
    # --- imports and missing builtins ---------------------------------------------------------------
    A("import_os", "imports", "import os\n" + program("return 1.0, {}"), "forbidden_import", "import os"),
    A("import_subprocess_in_function", "imports", program("import subprocess\nreturn 1.0, {}"),
      "forbidden_import", "subprocess"),
    A("from_os_import_system", "imports", "from os import system\n" + program("return 1.0, {}"),
      "forbidden_import", "from os import system"),
    A("import_ctypes", "imports", "import ctypes\n" + program("return 1.0, {}"), "forbidden_import", "ctypes"),
    A("import_string_formatter", "imports", "import string\n" + program("return 1.0, {}"), "forbidden_import",
      "string"),
    A("import_numpy_submodule", "imports", "import numpy.ctypeslib\n" + program("return 1.0, {}"),
      "forbidden_import", "numpy.ctypeslib"),
    A("dunder_import_call", "imports", program("os = __import__('os')\nreturn 1.0, {}"), "restricted",
      "__import__"),
    A("open_builtin", "builtins", program("open('CANARY/pwned', 'w').write('x')\nreturn 1.0, {}"),
      "forbidden_name", "open"),
    A("eval_builtin", "builtins", program("return eval('1.0'), {}"), "restricted", "eval"),
    A("exec_builtin", "builtins", program("exec('x = 1')\nreturn 1.0, {}"), "restricted", "exec"),
    A("compile_builtin", "builtins", program("compile('1', 'x', 'eval')\nreturn 1.0, {}"), "forbidden_name",
      "compile"),
    A("type_builtin", "builtins", program("t = type(obs)\nreturn 1.0, {}"), "forbidden_name", "type"),
    A("globals_builtin", "builtins", program("g = globals()\nreturn 1.0, {}"), "forbidden_name", "globals"),
    A("vars_builtin", "builtins", program("v = vars(np)\nreturn 1.0, {}"), "forbidden_name", "vars"),
    A("setattr_builtin", "builtins", program("setattr(np, 'pi', 3)\nreturn 1.0, {}"), "forbidden_name",
      "setattr"),
    A("exit_builtin", "builtins", program("exit(0)\nreturn 1.0, {}"), "forbidden_name", "exit"),
    A("object_getattribute", "builtins", program("object.__getattribute__(np, '_members')\nreturn 1.0, {}"),
      "restricted", "__getattribute__"),
    # --- dunder walks --------------------------------------------------------------------------------
    A("subclasses_walk", "dunder", program("s = ().__class__.__bases__[0].__subclasses__()\nreturn 1.0, {}"),
      "restricted", "starts with \"_\""),
    A("getattr_dunder", "dunder", program("c = getattr((), '__class__')\nreturn 1.0, {}"), "forbidden_attribute",
      "underscore"),
    A("getattr_obs_slot", "dunder", program("v = getattr(obs, '_v')\nreturn 1.0, {}"), "forbidden_attribute",
      "'_v'"),
    A("getattr_obs_fields", "dunder", program("f = getattr(next_obs, '_fields')\nreturn 1.0, {}"),
      "forbidden_attribute", "'_fields'"),
    A("safemodule_members", "dunder", program("m = getattr(np, '_members')\nreturn 1.0, {}"),
      "forbidden_attribute", "numpy._members"),
    A("hasattr_globals_probe", "dunder", program("h = hasattr(np.sum, '__globals__')\nreturn 1.0, {}"),
      "forbidden_attribute", "'__globals__'"),
    A("function_globals", "dunder", program("return 1.0, {}", top="def f():\n    pass\ng = f.__globals__\n"),
      "restricted", "__globals__"),
    A("mro_walk", "dunder", program("m = getattr(str, 'mro')()\nreturn 1.0, {}"), "forbidden_attribute", "'mro'"),
    A("getattr_through_map", "dunder", program("c = list(map(getattr, [obs], ['__class__']))\nreturn 1.0, {}"),
      "forbidden_attribute", "'__class__'"),
    A("getattr_through_sorted_key", "dunder",
      program("c = sorted([obs], key=lambda o: getattr(o, '__class__'))\nreturn 1.0, {}"),
      "forbidden_attribute", "'__class__'"),
    A("exception_obj", "dunder",
      program("try:\n    getattr(obs, 'nothing')\nexcept AttributeError as e:\n    o = e.obj\nreturn 1.0, {}"),
      "forbidden_attribute", "'obj'"),
    A("dtype_walk", "dunder", program("b = np.ones(2).dtype.base\nreturn 1.0, {}"), "forbidden_attribute", "'base'"),
    A("dispatcher_implementation", "dunder", program("i = getattr(np.sum, 'implementation')\nreturn 1.0, {}"),
      "forbidden_attribute", "'implementation'"),
    # --- generator and traceback frames --------------------------------------------------------------
    A("generator_gi_frame", "frames", program("g = (x for x in [1])\nf = g.gi_frame\nreturn 1.0, {}"),
      "restricted", "gi_frame"),
    A("generator_frame_back", "frames",
      program("g = (x for x in [1])\nf = getattr(getattr(g, 'gi_frame'), 'f_back')\nreturn 1.0, {}"),
      "forbidden_attribute", "'gi_frame'"),
    A("generator_close_generatorexit", "frames", program("g = (x for x in [1])\ng.close()\nreturn 1.0, {}"),
      "forbidden_attribute", "'close'"),
    A("generator_throw", "frames", program("g = (x for x in [1])\ng.throw(ValueError)\nreturn 1.0, {}"),
      "forbidden_attribute", "'throw'"),
    A("traceback_attribute", "frames",
      program("try:\n    1 / 0\nexcept Exception as e:\n    t = e.__traceback__\nreturn 1.0, {}"),
      "restricted", "__traceback__"),
    A("with_traceback", "frames",
      program("try:\n    1 / 0\nexcept Exception as e:\n    e.with_traceback(None)\nreturn 1.0, {}"),
      "forbidden_attribute", "'with_traceback'"),
    A("function_code", "frames", program("return 1.0, {}", top="def f():\n    pass\nc = getattr(f, 'replace')\n"),
      "forbidden_attribute", "'replace'"),
    # --- str.format, format_map, string.Formatter ----------------------------------------------------
    A("format_class_walk", "format", program("s = '{0.__class__}'.format(obs)\nreturn 1.0, {}"),
      "forbidden_attribute", "str.format"),
    A("format_map_walk", "format", program("s = '{o.__class__}'.format_map({'o': obs})\nreturn 1.0, {}"),
      "forbidden_attribute", "format_map"),
    A("unbound_str_format", "format", program("s = str.format('{0.__class__}', obs)\nreturn 1.0, {}"),
      "forbidden_attribute", "str.format"),
    A("getattr_format", "format", program("f = getattr('{0._v}', 'format')\nreturn 1.0, {}"),
      "forbidden_attribute", "str.format"),
    A("fstring_dunder", "format", program("s = f'{obs.__class__}'\nreturn 1.0, {}"), "restricted", "__class__"),
    A("percent_mapping_slot", "format", program("s = '%(_v)s' % obs\nreturn 1.0, {}"), "runtime_error",
      "no observation field '_v'"),
    # --- rebinding the guard names -------------------------------------------------------------------
    A("assign_getattr_hook", "rebinding", program("_getattr_ = lambda o, n: o\nreturn 1.0, {}"), "restricted",
      "_getattr_"),
    A("walrus_write_hook", "rebinding", program("(_write_ := (lambda x: x))\nreturn 1.0, {}"), "restricted",
      "_write_"),
    A("parameter_named_hook", "rebinding", program("return 1.0, {}", top="def f(_getiter_=None):\n    pass\n"),
      "restricted", "_getiter_"),
    A("import_as_hook", "rebinding", "import numpy as _getattr_\n" + program("return 1.0, {}"), "restricted",
      "_getattr_"),
    A("for_target_hook", "rebinding", program("for _print_ in [1]:\n    pass\nreturn 1.0, {}"), "restricted",
      "_print_"),
    A("except_as_hook", "rebinding", program("try:\n    pass\nexcept Exception as _write_:\n    pass\n"
                                             "return 1.0, {}"), "restricted", "_write_"),
    A("builtins_dict", "rebinding", program("__builtins__['open'] = 1\nreturn 1.0, {}"), "restricted",
      "__builtins__"),
    A("match_capture_hook", "rebinding", program("match 1:\n    case _write_:\n        pass\nreturn 1.0, {}"),
      "restricted", "Match"),
    A("class_definition", "rebinding", program("return 1.0, {}", top="class Evil:\n    pass\n"),
      "forbidden_construct", "class Evil"),
    # --- numpy routes to os, subprocess, builtins, ctypes, pickle, files, network -----------------------
    A("np_load_file", "numpy_routes", program("a = np.load('CANARY/x.npy')\nreturn 1.0, {}"), "forbidden_attribute",
      "numpy.load"),
    A("np_save_file", "numpy_routes", program("np.save('CANARY/x.npy', np.ones(2))\nreturn 1.0, {}"),
      "forbidden_attribute", "numpy.save"),
    A("np_savetxt_file", "numpy_routes", program("np.savetxt('CANARY/x.txt', np.ones(2))\nreturn 1.0, {}"),
      "forbidden_attribute", "numpy.savetxt"),
    A("np_fromfile_environ", "numpy_routes", program("a = np.fromfile('/proc/self/environ')\nreturn 1.0, {}"),
      "forbidden_attribute", "numpy.fromfile"),
    A("np_loadtxt_environ", "numpy_routes", program("a = np.loadtxt('/proc/self/environ')\nreturn 1.0, {}"),
      "forbidden_attribute", "numpy.loadtxt"),
    A("np_datasource_network", "numpy_routes",
      program("d = np.DataSource().open('http://example.com/')\nreturn 1.0, {}"), "forbidden_attribute",
      "numpy.DataSource"),
    A("ndarray_tofile", "numpy_routes", program("np.ones(2).tofile('CANARY/x')\nreturn 1.0, {}"),
      "forbidden_attribute", "'tofile'"),
    A("ndarray_dump_file", "numpy_routes", program("np.ones(2).dump('CANARY/x.pkl')\nreturn 1.0, {}"),
      "forbidden_attribute", "'dump'"),
    A("ndarray_dumps_pickle", "numpy_routes", program("p = np.ones(2).dumps()\nreturn 1.0, {}"),
      "forbidden_attribute", "'dumps'"),
    A("scalar_dumps_pickle", "numpy_routes", program("p = np.float64(1.0).dumps()\nreturn 1.0, {}"),
      "forbidden_attribute", "'dumps'"),
    A("scalar_tofile", "numpy_routes", program("np.float64(1.0).tofile('CANARY/x')\nreturn 1.0, {}"),
      "forbidden_attribute", "'tofile'"),
    A("ndarray_ctypes", "numpy_routes", program("p = np.ones(2).ctypes.data\nreturn 1.0, {}"),
      "forbidden_attribute", "'ctypes'"),
    A("np_ctypeslib", "numpy_routes", program("c = np.ctypeslib\nreturn 1.0, {}"), "forbidden_attribute",
      "numpy.ctypeslib"),
    A("np_testing_subprocess", "numpy_routes", program("t = np.testing\nreturn 1.0, {}"), "forbidden_attribute",
      "numpy.testing"),
    A("np_f2py", "numpy_routes", program("f = np.f2py\nreturn 1.0, {}"), "forbidden_attribute", "numpy.f2py"),
    A("np_lib_stride_tricks", "numpy_routes", program("s = np.lib.stride_tricks.as_strided\nreturn 1.0, {}"),
      "forbidden_attribute", "numpy.lib is not available"),
    A("np_frombuffer", "numpy_routes", program("a = np.frombuffer(b'12345678')\nreturn 1.0, {}"),
      "forbidden_attribute", "numpy.frombuffer"),
    A("np_vectorize", "numpy_routes", program("v = np.vectorize(len)\nreturn 1.0, {}"), "forbidden_attribute",
      "numpy.vectorize"),
    A("np_frompyfunc", "numpy_routes", program("v = np.frompyfunc(len, 1, 1)\nreturn 1.0, {}"),
      "forbidden_attribute", "numpy.frompyfunc"),
    A("np_ndarray_buffer", "numpy_routes", program("a = np.ndarray((10**6,), buffer=b'x')\nreturn 1.0, {}"),
      "forbidden_attribute", "numpy.ndarray(...) is not available"),
    A("np_ndarray_stand_in_attribute", "numpy_routes", program("n = np.ndarray.__new__\nreturn 1.0, {}"),
      "restricted", "__new__"),
    A("generic_alias_forwarding", "numpy_routes", program("c = dict[str, float].fromkeys\nreturn 1.0, {}"),
      "forbidden_attribute", "'fromkeys' of a GenericAlias"),
    A("printed_is_text_only", "numpy_routes", program("print('x')\nw = printed.upper\nreturn len(printed) + w, {}"),
      "runtime_error", "TypeError"),
    A("deep_tuple_hash_segfault", "crash",
      "T = ()\nfor i in range(400_000):\n    T = (T,)\n" + program("return float(hash(T) % 2), {}"),
      "worker_crashed", "SIGSEGV"),
    A("np_sum_globals", "numpy_routes", program("g = getattr(np.sum, '__globals__')\nreturn 1.0, {}"),
      "forbidden_attribute", "'__globals__'"),
    A("np_linalg_internals", "numpy_routes", program("l = np.linalg.lapack_lite\nreturn 1.0, {}"),
      "forbidden_attribute", "numpy.linalg.lapack_lite"),
    A("ufunc_strided_loop", "numpy_routes", program("l = getattr(np.add, '_get_strided_loop')\nreturn 1.0, {}"),
      "forbidden_attribute", "'_get_strided_loop'"),
    A("typing_abc_register", "numpy_routes",
      "from typing import Sequence\n" + program("Sequence.register(int)\nreturn 1.0, {}"),
      "forbidden_attribute", "'register'"),
    A("typing_forwards_to_origin", "numpy_routes",
      "from typing import List\n" + program("c = List.copy\nreturn 1.0, {}"), "forbidden_attribute", "'copy'"),
    # --- out-of-bounds memory through strides, resizing, views ------------------------------------------
    A("resize_use_after_free", "memory_safety",
      program("a = np.ones(1000)\nb = a[:]\na.resize(10, refcheck=False)\nreturn float(b.sum()), {}"),
      "forbidden_attribute", "'resize'"),
    A("strides_assignment", "memory_safety", program("a = np.ones(4)\na.strides = (10**9,)\nreturn 1.0, {}"),
      "forbidden_attribute", "'strides'"),
    A("shape_assignment", "memory_safety", program("a = np.ones(4)\na.shape = (10**6,)\nreturn 1.0, {}"),
      "forbidden_attribute", "'shape'"),
    A("dtype_assignment", "memory_safety", program("a = np.ones(4)\na.dtype = np.int8\nreturn 1.0, {}"),
      "forbidden_attribute", "'dtype'"),
    A("view_reinterpret", "memory_safety", program("v = np.ones(4).view(np.int64)\nreturn 1.0, {}"),
      "forbidden_attribute", "'view'"),
    A("setflags_writeable", "memory_safety", program("a = obs[0:2]\na.setflags(write=True)\nreturn 1.0, {}"),
      "forbidden_attribute", "'setflags'"),
    A("base_of_observation_slice", "memory_safety", program("b = next_obs[0:2].base\nreturn 1.0, {}"),
      "forbidden_attribute", "'base'"),
    A("out_into_readonly_slice", "memory_safety", program("np.add(1.0, 1.0, out=obs[0:2])\nreturn 1.0, {}"),
      "runtime_error", "read-only"),
    A("where_into_readonly_view", "memory_safety",
      program("np.multiply(2.0, 3.0, out=np.asarray(next_obs), where=np.asarray(next_obs) > -9)\nreturn 1.0, {}"),
      "runtime_error", "read-only"),
    A("object_array_method_call", "memory_safety",
      program("a = np.ones(1).astype('O')\na[0] = obs\nb = np.sqrt(a)\nreturn 1.0, {}"),
      "runtime_error", "no callable sqrt method"),
    A("array_function_protocol", "memory_safety", program("f = np.ones(2).__array_function__\nreturn 1.0, {}"),
      "restricted", "__array_function__"),
    A("write_readonly_asarray", "memory_safety", program("a = np.asarray(next_obs)\na[0] = 5.0\nreturn 1.0, {}"),
      "runtime_error", "read-only"),
    A("write_observation_item", "memory_safety", program("next_obs[0] = 5.0\nreturn 1.0, {}"),
      "forbidden_attribute", "observations are read-only"),
    A("ufunc_at_out_of_bounds", "memory_safety", program("np.add.at(np.ones(3), [10**9], 1.0)\nreturn 1.0, {}"),
      "runtime_error", "out of bounds"),
    A("take_out_of_bounds", "memory_safety", program("np.ones(3).take(10**9)\nreturn 1.0, {}"), "runtime_error",
      "out of bounds"),
    A("searchsorted_bad_sorter", "memory_safety",
      program("np.searchsorted(np.ones(3), 1.0, sorter=[10**9, 0, 1])\nreturn 1.0, {}"), "runtime_error",
      "out of range"),
    A("flat_iterator_write", "memory_safety", program("a = np.ones(3)\na.flat[0] = 2.0\nreturn 1.0, {}"),
      "forbidden_attribute", "'flat'"),
    # --- numpy global state ---------------------------------------------------------------------------
    A("np_seterr", "numpy_state", program("np.seterr(all='ignore')\nreturn 1.0, {}"), "forbidden_attribute",
      "numpy.seterr"),
    A("np_errstate", "numpy_state", program("e = np.errstate(all='raise')\nreturn 1.0, {}"), "forbidden_attribute",
      "numpy.errstate"),
    A("np_set_printoptions", "numpy_state", program("np.set_printoptions(precision=1)\nreturn 1.0, {}"),
      "forbidden_attribute", "numpy.set_printoptions"),
    A("np_random_seed", "numpy_state", program("np.random.seed(0)\nreturn 1.0, {}"), "forbidden_attribute",
      "numpy.random"),
    A("np_default_rng", "numpy_state", program("r = np.random.default_rng()\nreturn 1.0, {}"), "forbidden_attribute",
      "numpy.random"),
    # --- endless loops, also inside except BaseException ----------------------------------------------------
    A("while_true", "loops", program("while True:\n    pass"), "timeout", "did not return"),
    A("while_true_swallowing_the_timer", "loops",
      program("while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass"),
      "timeout", "killed"),
    A("swallow_the_timer_then_return", "loops",
      program("try:\n    while True:\n        pass\nexcept BaseException:\n    pass\nreturn 1.0, {}"),
      "timeout", "caught the timer"),
    A("loop_at_module_level", "loops", "while True:\n    pass\n" + program("return 1.0, {}"), "timeout",
      "module's top level"),
    A("iter_with_sentinel", "loops", program("for _ in iter(int, 1):\n    pass\nreturn 1.0, {}"), "timeout",
      "did not return"),
    A("recursion_swallowing_recursionerror", "loops",
      program("return g(0), {}", top="def g(n):\n    try:\n        return g(n + 1)\n    except BaseException:\n"
                                     "        return g(n + 1)\n"), "timeout", "s"),
    # --- memory, bignum and string bombs -------------------------------------------------------------------
    A("list_bomb", "bombs", program("x = [0] * 10**10\nreturn 1.0, {}"), "memory", "MemoryError"),
    A("string_bomb", "bombs", program("x = 'x' * 10**10\nreturn 1.0, {}"), "memory", "MemoryError"),
    A("string_doubling", "bombs", program("s = 'x'\nwhile True:\n    s += s"), ("memory", "timeout"), ""),
    A("format_width_bomb", "bombs", program("s = f'{1:>{10**10}}'\nreturn 1.0, {}"), "memory", "MemoryError"),
    A("percent_width_bomb", "bombs", program("s = '%*d' % (10**9, 1)\nreturn 1.0, {}"), "memory", "MemoryError"),
    A("bignum_shift", "bombs", program("x = 1 << 10**10\nreturn 1.0, {}"), "memory", "MemoryError"),
    A("bignum_to_string", "bombs", program("s = str(10**10000)\nreturn 1.0, {}"), "runtime_error",
      "Exceeds the limit"),
    A("np_zeros_over_cap", "bombs", program("a = np.zeros((10**5, 10**5))\nreturn 1.0, {}"), "memory",
      "at most 1000000 elements"),
    A("ndarray_repeat_bomb", "bombs", program("a = np.ones(1000).repeat(10**8)\nreturn 1.0, {}"), "memory",
      "MemoryError"),
    A("ufunc_outer_bomb", "bombs", program("a = np.multiply.outer(np.ones(10**5), np.ones(10**5))\nreturn 1.0, {}"),
      "memory", "MemoryError"),
    A("memory_bomb_at_module_level", "bombs", "X = [0] * 10**10\n" + program("return 1.0, {}"), "memory",
      "MemoryError"),
    # --- long C calls ----------------------------------------------------------------------------------------
    A("sum_of_huge_range", "c_calls", program("x = sum(range(10**11))\nreturn 1.0, {}"), "timeout",
      "the worker was killed"),
    A("max_of_huge_range", "c_calls", program("x = max(range(10**11))\nreturn 1.0, {}"), "timeout",
      "the worker was killed"),
    A("pow_bignum", "c_calls", program("x = pow(10, 10**8)\nreturn 1.0, {}"), "timeout", "s"),
    A("math_factorial", "c_calls", program("x = math.factorial(10**8)\nreturn 1.0, {}"), ("timeout", "memory"), ""),
    A("linalg_pinv_loop", "c_calls", program("for _ in range(100):\n    np.linalg.pinv(np.ones((700, 700)))\n"
                                             "return 1.0, {}"), "timeout", "s"),
    # --- recursion -----------------------------------------------------------------------------------------------
    A("recursion", "recursion", program("return f(0), {}", top="def f(n):\n    return f(n + 1)\n"),
      "runtime_error", "recursed too deeply"),
    A("mutual_recursion", "recursion",
      program("return a(0), {}", top="def a(n):\n    return b(n)\ndef b(n):\n    return a(n)\n"),
      "runtime_error", "recursed too deeply"),
    A("recursion_at_module_level", "recursion",
      "def f(n):\n    return f(n + 1)\nX = f(0)\n" + program("return 1.0, {}"), "module_error", "recursed"),
    # --- source-size and nesting bombs ------------------------------------------------------------------
    A("source_too_large", "source_bombs", "x = 1\n" * 20_000 + program("return 1.0, {}"), "too_large", "bytes"),
    A("too_many_lines", "source_bombs", "\n" * 3_000 + program("return 1.0, {}"), "too_large", "lines"),
    A("bracket_nesting", "source_bombs", "x = " + "(" * 200 + "1" + ")" * 200 + "\n" + program("return 1.0, {}"),
      "too_deep", "brackets nest"),
    A("block_nesting", "source_bombs",
      "".join(" " * i + "if True:\n" for i in range(30)) + " " * 30 + "pass\n" + program("return 1.0, {}"),
      "too_deep", "nest"),
    A("unary_chain", "source_bombs", "x = " + "-" * 60_000 + "1\n" + program("return 1.0, {}"), "too_deep", "nest"),
    A("attribute_chain", "source_bombs", "x = np" + ".a" * 25_000 + "\n" + program("return 1.0, {}"),
      "too_deep", "nest"),
    # --- NaN, inf and non-float returns ----------------------------------------------------------------------
    A("nan_total", "returns", program("return float('nan'), {}"), "non_finite", "nan"),
    A("inf_total_from_overflow", "returns", program("return 1e308 * 10, {}"), "non_finite", "inf"),
    A("nan_component", "returns", program("return 1.0, {'a': math.nan}"), "non_finite", "component 'a'"),
    A("numpy_inf", "returns", program("return np.float32(np.inf), {}"), "non_finite", "inf"),
    A("huge_integer_total", "returns", program("return 10**400, {}"), "non_finite", "too large"),
    A("string_total", "returns", program("return '1.0', {}"), "bad_return", "str"),
    A("none_total", "returns", program("return None, {}"), "bad_return", "NoneType"),
    A("complex_total", "returns", program("return 1 + 2j, {}"), "bad_return", "complex"),
    A("array_total", "returns", program("return np.ones(3), {}"), "bad_return", "shape"),
    A("no_return", "returns", program("pass"), "bad_return", "NoneType"),
    A("list_components", "returns", program("return 1.0, [1.0]"), "bad_components", "list"),
    A("too_many_components", "returns", program("return 1.0, {f'c{i}': 1.0 for i in range(100)}"),
      "bad_components", "at most"),
    A("non_string_component_name", "returns", program("return 1.0, {1: 1.0}"), "bad_components", "name"),
    A("control_characters_in_component_name", "returns", program("return 1.0, {'\\x1b[2J': 1.0}"),
      "bad_components", "ASCII letters"),
    A("exception_object_total", "returns", program("return ValueError('x'), {}"), "bad_return", "ValueError"),
    # --- BaseException, terminal injection ----------------------------------------------------------------
    A("raise_base_exception", "base_exceptions", program("raise BaseException('stop the host')"), "runtime_error",
      "BaseException"),
    A("raise_system_exit", "base_exceptions", program("raise SystemExit(0)"), "forbidden_name", "SystemExit"),
    A("raise_keyboard_interrupt", "base_exceptions", program("raise KeyboardInterrupt"), "forbidden_name",
      "KeyboardInterrupt"),
    A("terminal_escape_in_message", "base_exceptions", program("raise ValueError('\\x1b]0;pwned\\x07\\x1b[2J')"),
      "runtime_error", "\\x1b]0;pwned"),
    # --- the environment ---------------------------------------------------------------------------------------
    A("os_environ", "environment", "import os\n" + program("return float(len(os.environ['OPENAI_API_KEY'])), {}"),
      "forbidden_import", "import os"),
    A("proc_self_environ", "environment",
      program("return float(len(open('/proc/self/environ').read())), {}"), "forbidden_name", "open"),
    A("proc_parent_environ", "environment",
      program("a = np.fromfile('/proc/1/environ', dtype=np.uint8)\nreturn 1.0, {}"), "forbidden_attribute",
      "numpy.fromfile"),
    A("environ_in_info", "environment", program("return float(info['OPENAI_API_KEY']), {}"), "runtime_error",
      "KeyError"),
]


# ------------------------------------------------------------------------------------------ fixtures


@dataclass
class Scene:
    box: RewardSandbox
    canary: Path
    host_cwd: Path
    host_tmp: Path


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("attacks")
    canary, host_cwd, host_tmp = root / "canary", root / "cwd", root / "tmp"
    for path in (canary, host_cwd, host_tmp):
        path.mkdir()
    saved_env = {k: os.environ.get(k) for k in SECRETS}
    saved_tmp, saved_cwd = tempfile.tempdir, os.getcwd()
    os.environ.update(SECRETS)
    tempfile.tempdir = str(host_tmp)  # the host makes worker directories here: we see all of them
    os.chdir(host_cwd)
    try:
        with RewardSandbox(FIELDS, LIMITS) as box:
            yield Scene(box, canary, host_cwd, host_tmp)
    finally:
        os.chdir(saved_cwd)
        tempfile.tempdir = saved_tmp
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def batch(n: int = 2, seed: int = 0) -> Transitions:
    rng = np.random.default_rng(seed)
    obs = rng.normal(scale=0.1, size=(n, 4))
    next_obs = obs + rng.normal(scale=0.01, size=(n, 4))
    return Transitions(obs, rng.integers(0, 2, n), next_obs, np.ones(n), np.arange(n) % 2 == 1,
                       np.zeros(n, bool), np.arange(1, n + 1))


def refusal(box: RewardSandbox, source: str) -> tuple[Issue, str]:
    """The first error a program gets, loading or calling; fails the test if it is accepted."""
    loaded = box.load(source)
    if not loaded.ok:
        return next(i for i in loaded.issues if i.severity == "error"), loaded.printed
    try:
        result = box.call(batch(), want_print=True)
    except RewardCallError as exc:
        return exc.issue, exc.printed
    pytest.fail(f"accepted: totals {result.totals.tolist()}, components {result.components}")


def assert_nothing_written(scene: Scene) -> None:
    assert list(scene.canary.iterdir()) == []
    assert list(scene.host_cwd.iterdir()) == []
    for entry in scene.host_tmp.iterdir():  # only the workers' own directories, each empty
        assert entry.name.startswith("rewardsmith-sandbox-") and entry.is_dir(), entry
        assert list(entry.iterdir()) == [], entry
    if scene.box.workdir is not None:
        assert os.listdir(scene.box.workdir) == []


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for name, value in SECRETS.items():
            assert value not in text
            assert name not in text or name == "OPENAI_API_KEY"  # the attack itself may name the variable


# ------------------------------------------------------------------------------------------- attacks


def test_the_suite_covers_every_category_of_the_issue():
    categories = {a.category for a in ATTACKS}
    assert len(ATTACKS) >= 40 and len({a.id for a in ATTACKS}) == len(ATTACKS)
    assert categories >= {"imports", "builtins", "dunder", "frames", "format", "rebinding", "numpy_routes",
                          "memory_safety", "numpy_state", "loops", "bombs", "c_calls", "recursion", "source_bombs",
                          "returns", "base_exceptions", "environment", "crash"}
    assert all(code in CODES for a in ATTACKS for code in a.codes)


@pytest.mark.parametrize("case", ATTACKS, ids=lambda a: f"{a.category}-{a.id}")
def test_attack_is_refused_with_a_reason_writes_nothing_and_leaks_nothing(scene, case):
    source = case.source.replace("CANARY", str(scene.canary))
    issue, printed = refusal(scene.box, source)
    assert issue.code in case.codes, f"{issue}"
    assert case.says.lower() in issue.message.lower(), f"{issue}"
    assert issue.message.strip() and issue.severity == "error"
    assert "\x1b" not in issue.message and "\x1b" not in printed
    assert_no_secret(issue.message, printed)
    assert_nothing_written(scene)


def test_the_worker_environment_never_held_the_secrets(scene):
    scene.box.load(program("return next_obs[0], {}"))
    try:
        environ = Path(f"/proc/{scene.box.pid}/environ").read_bytes()
    except PermissionError:  # pragma: no cover - a host that may not read its worker's /proc
        environ = b""
    for name, value in SECRETS.items():
        assert os.environ[name] == value  # the host does hold them
        assert name.encode() not in environ and value.encode() not in environ
    assert not set(SECRETS) & set(scene.box.diagnose()["environ"])


def test_a_program_after_an_attack_starts_clean(scene):
    """Fresh globals per program: state one candidate leaves behind is not there for the next."""
    refusal(scene.box, program("raise ValueError('x')", top="import numpy as np\nLEFT = [1]\n"))
    issue, _ = refusal(scene.box, program("return float(LEFT[0]), {}"))
    assert issue.code == "forbidden_name" and "LEFT" in issue.message


# ------------------------------------------------------------------------------------------ controls


CONTROLS = {
    "array_item_writes": program("""
        a = np.zeros(3)
        a[0] = next_obs.pole_angle
        a[1:3] = [next_obs[0], 1.0]
        a[2] += 0.5
        d = {"x": 1.0}
        d["x"] *= 2.0
        return float(a.sum()) + d["x"], {"a0": float(a[0])}
        """),
    "ndarray_methods": program("""
        v = np.asarray(next_obs)
        c = v.clip(-0.05, 0.05)
        total = v.sum() + v.mean() + v.max() + c.min() + v.astype(np.float32).std() + v.reshape(2, 2).T[0, 1]
        if isinstance(v, np.ndarray) and not isinstance(total, (np.ndarray, str)):
            total += 1.0
        return float(total), {"mean": float(v.mean()), "argmax": float(v.argmax())}
        """),
    "loops_and_helpers": program("""
        total = 0.0
        for i, value in enumerate(next_obs):
            total += weight(i) * value ** 2
        k = 0
        while k < 3:
            k += 1
        return -total + k, {"k": float(k)}
        """, top="""
        def weight(i):
            \"\"\"Later fields count more.\"\"\"
            return 1.0 + 0.5 * i
        """),
    "module_constants_and_docstring": '''"""Keep the pole up."""
import math

POLE_LIMIT = 0.2095
WEIGHTS = {"upright": 1.0, "centred": 0.3}


def compute_reward(obs, action, next_obs, info):
    """Upright and centred."""
    upright = 1.0 - abs(next_obs.pole_angle) / POLE_LIMIT
    centred = math.exp(-abs(next_obs.cart_position))
    parts = {"upright": upright, "centred": centred}
    return sum(WEIGHTS[k] * v for k, v in parts.items()), parts
''',
    "typing_imports_and_annotations": '''from __future__ import annotations
from typing import Dict, Tuple, Optional
import numpy as np
import numpy.typing as npt

Reward = Tuple[float, Dict[str, float]]


def speed(v: npt.NDArray[np.float64], scale: Optional[float] = None) -> float:
    s: float = float(np.abs(v).sum())
    return s * (scale or 1.0)


def compute_reward(obs, action, next_obs, info) -> Reward:
    total: float = -speed(np.asarray(next_obs)[1::2], 0.5)
    return total, {"speed": total}
''',
    "numpy_scalars": program("""
        x = np.float64(next_obs.cart_velocity)
        y = np.float32(2.0) * x + np.int64(1)
        return y.item() + float(np.tanh(x)) + float(np.float64.fromhex('0x1p-2')), {"x": x}
        """),
    "linalg_norm_and_math": program("""
        n = np.linalg.norm(np.asarray(next_obs)[0:2])
        m = math.hypot(next_obs[0], next_obs[1]) + math.cos(next_obs.pole_angle) + math.sqrt(4.0)
        return float(n) + m + float(np.linalg.det(np.eye(2) * 2.0)), {"norm": float(n)}
        """),
    "comprehensions": program("""
        squares = [v * v for v in next_obs]
        named = {k: abs(next_obs[k]) for k in next_obs.keys()}
        evens = {i for i in range(6) if i % 2 == 0}
        total = sum(squares) + sum(named.values()) + len(evens) + sum(x for x in squares if x > 0)
        return total, {"n": float(len(named))}
        """),
    "fstrings_in_print": program("""
        print(f"angle={next_obs.pole_angle:.3f} step={info['step']} {next_obs!r}")
        print("%.2f" % next_obs[0], f"{np.float64(1.5):>8.2f}")
        return next_obs.pole_angle, {}
        """),
    "observation_slices_and_asarray": program("""
        head = obs[0:2]
        tail = np.asarray(next_obs)[2:]
        return float(head.sum() - tail.sum() + np.asarray(next_obs).dot(np.ones(4))), {}
        """),
    "info_and_action": program("""
        alive = 0.0 if info["terminated"] else 1.0
        push = 1.0 if action == 1 else -1.0
        return alive + 0.01 * push + 0.001 * info["step"] + info["env_reward"], {"alive": alive}
        """),
    "where_clip_exp_tanh": program("""
        v = np.asarray(next_obs)
        w = np.where(v > 0, np.exp(-v), np.tanh(v))
        return float(np.clip(w, -1, 1).sum()), {"w0": float(w[0])}
        """),
    "try_except_exception": program("""
        try:
            r = 1.0 / (next_obs[0] - next_obs[0])
        except ZeroDivisionError:
            r = 0.5
        return r, {}
        """),
    "bare_number": program("return float(next_obs.pole_angle) * 2"),
}


def plain_python(source: str, data: Transitions) -> list[float]:
    """The same program as ordinary Python in this process (trusted test inputs only)."""
    namespace: dict[str, Any] = {"__name__": "plain"}
    exec(compile(source, "<plain>", "exec"), namespace)  # noqa: S102 - our own control programs
    view = make_view_class(FIELDS)
    totals = []
    for i in range(len(data)):
        info = {"env_reward": float(data.env_reward[i]), "terminated": bool(data.terminated[i]),
                "truncated": bool(data.truncated[i]), "step": int(data.step[i])}
        out = namespace["compute_reward"](view(data.obs[i].tolist()), int(data.actions[i]),
                                          view(data.next_obs[i].tolist()), info)
        totals.append(float(out[0] if isinstance(out, tuple) else out))
    return totals


@pytest.mark.parametrize("name", sorted(CONTROLS))
def test_legitimate_rewards_run_and_give_the_plain_python_numbers(scene, name):
    source = CONTROLS[name]
    loaded = scene.box.load(source)
    assert loaded.ok, loaded.issues
    data = batch(4, seed=1)
    result = scene.box.call(data, want_print=True)
    assert result.totals.tolist() == pytest.approx(plain_python(source, data), rel=1e-6, abs=1e-9)
    assert result.bare == (name == "bare_number")
    if name == "fstrings_in_print":
        assert f"angle={data.next_obs[0][2]:.3f} step=1 Observation(" in result.printed
    assert_nothing_written(scene)


def test_control_values_by_hand(scene):
    """Two controls checked against numbers written out, not only against plain Python."""
    data = batch(1)
    scene.box.load(CONTROLS["array_item_writes"])
    result = scene.box.call(data)
    n = data.next_obs[0]
    assert result.totals[0] == pytest.approx(n[2] + n[0] + 1.5 + 2.0)
    assert result.components[0] == {"a0": pytest.approx(n[2])}
    scene.box.load(CONTROLS["linalg_norm_and_math"])
    result = scene.box.call(data)
    norm = float(np.hypot(n[0], n[1]))
    assert result.totals[0] == pytest.approx(norm + norm + np.cos(n[2]) + 2.0 + 4.0)


# ------------------------------------------------------------------------------------------------ CLI

CLI_ATTACKS = ["import_os", "format_class_walk", "resize_use_after_free", "while_true_swallowing_the_timer",
               "list_bomb", "terminal_escape_in_message", "sum_of_huge_range"]


def test_rewardsmith_check_reports_each_attack_as_a_rejection_within_seconds(tmp_path):
    by_id = {a.id: a for a in ATTACKS}
    env = dict(os.environ, COLUMNS="200", **SECRETS)
    env.pop("OPENAI_BASE_URL", None)
    for name in CLI_ATTACKS:
        case = by_id[name]
        path = tmp_path / f"{name}.py"
        path.write_text(case.source.replace("CANARY", str(tmp_path / "canary")))
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "rewardsmith.cli", "check", str(path), "--env", "cartpole"],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
        elapsed = time.monotonic() - started
        output = done.stdout + done.stderr
        assert done.returncode == 1, output
        assert "rejected" in done.stdout and "Traceback" not in output, output
        assert any(f"[{code}]" in done.stdout for code in case.codes), output
        assert case.says.lower() in done.stdout.lower(), output
        assert "\x1b" not in done.stdout, output
        assert_no_secret(output)
        assert elapsed < 30, f"{name} took {elapsed:.1f} s"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.py" for n in CLI_ATTACKS)

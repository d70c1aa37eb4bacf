"""From untrusted source to a restricted code object, with every refusal worded for repair.

Runs inside the sandbox worker: the host process never parses untrusted source. Order:
caps on size and nesting (before the parser sees anything), ``ast.parse``, static checks
(signature, imports, constructs, field names), a rewrite of harmless constructs RestrictedPython
refuses (annotations, ``if __name__ == "__main__"`` blocks, ``from __future__``), then
RestrictedPython's compiler.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from types import CodeType

from RestrictedPython import compile_restricted_exec

from rewardsmith.sandbox.issues import Issue

__all__ = ["ALLOWED_IMPORTS", "EPISODE_ATTRIBUTES", "CompileLimits", "FILENAME", "compile_reward"]

FILENAME = "<reward>"
ALLOWED_IMPORTS = ("math", "numpy", "typing")
_VIEW_METHODS = frozenset({"keys"})
_NAMED_METHODS = frozenset({"row", "layout", "keys", "items", "values", "get"})
EPISODE_ATTRIBUTES = ("obs", "actions", "env_rewards", "terminated", "truncated", "final", "env_return")
"""What a fitness program reads of its episode (``rewardsmith.episode.Episode``), besides ``len(episode)``."""


@dataclass(frozen=True)
class CompileLimits:
    """Caps applied before parsing; each defeats a parser or compiler bomb."""

    max_bytes: int = 64_000
    max_lines: int = 2_000
    max_bracket_depth: int = 40
    max_indent_depth: int = 16
    max_ast_depth: int = 80


def compile_reward(
    source: str, fields: Sequence[str], limits: CompileLimits = CompileLimits(), kind: str = "reward"
) -> tuple[CodeType | None, list[Issue]]:
    """Compile a reward program (``kind`` "reward") or a fitness program ("fitness": ``fitness(episode)``)
    under the restricting policy.

    Returns:
        The code object (None when any error was found) and every issue found.
    """
    issues = _check_size(source, limits)
    if issues:
        return None, issues
    try:
        tree = ast.parse(source, filename=FILENAME)
    except SyntaxError as exc:
        text = (exc.text or "").strip()
        detail = f": {text!r}" if text else ""
        return None, [Issue("syntax", f"{exc.msg}{detail}", exc.lineno)]
    except (RecursionError, MemoryError) as exc:
        return None, [Issue("too_deep", f"the parser gave up ({type(exc).__name__}): expressions or blocks nest too "
                                        "deeply; split them into named intermediate values")]
    except ValueError as exc:
        return None, [Issue("syntax", f"the program does not parse: {exc}")]
    if _ast_depth(tree) > limits.max_ast_depth:
        return None, [Issue("too_deep", f"expressions nest deeper than {limits.max_ast_depth} levels; "
                                        "split them into named intermediate values")]
    issues = _check_fitness_tree(tree, fields) if kind == "fitness" else _check_tree(tree, fields)
    if any(i.severity == "error" for i in issues):
        return None, issues
    tree = _Rewrite().visit(tree)
    ast.fix_missing_locations(tree)
    result = compile_restricted_exec(tree, filename=FILENAME)
    for message in result.errors:
        issues.append(_restricted_issue(message))
    if result.errors or result.code is None:
        return None, issues
    return result.code, issues


def _check_size(source: str, limits: CompileLimits) -> list[Issue]:
    size = len(source.encode("utf-8", "surrogatepass"))
    if size > limits.max_bytes:
        return [Issue("too_large", f"the program is {size} bytes; the cap is {limits.max_bytes}. "
                                   "A reward function should be short: keep only compute_reward and its helpers")]
    lines = source.count("\n") + 1
    if lines > limits.max_lines:
        return [Issue("too_large", f"the program has {lines} lines; the cap is {limits.max_lines}")]
    if "\x00" in source:
        return [Issue("syntax", "the program contains a NUL byte")]
    try:
        source.encode("utf-8")
    except UnicodeEncodeError as exc:
        return [Issue("syntax", f"the program contains a character that is not valid Unicode text at offset "
                                f"{exc.start} (a lone surrogate)")]
    depth = deepest = 0
    for ch in source:
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth -= 1
    if deepest > limits.max_bracket_depth:
        return [Issue("too_deep", f"brackets nest {deepest} levels deep; the cap is {limits.max_bracket_depth}")]
    indents = {len(line) - len(line.lstrip(" \t")) for line in source.splitlines() if line.strip()}
    if len(indents) > limits.max_indent_depth:
        return [Issue("too_deep", f"blocks nest more than {limits.max_indent_depth} levels deep")]
    return []


def _ast_depth(tree: ast.AST) -> int:
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _check_constructs(tree: ast.Module, where: str) -> list[Issue]:
    """The imports, classes and async code anywhere in ``tree``; ``where`` (" in reward code" or "") follows
    "is not allowed" in the messages."""
    issues: list[Issue] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            issues.extend(_check_import(node))
        elif isinstance(node, ast.ClassDef):
            issues.append(Issue("forbidden_construct", f"class {node.name} is not allowed{where}; use functions and "
                                                       "module-level constants instead", node.lineno))
        elif isinstance(node, (ast.AsyncFunctionDef, ast.Await, ast.AsyncFor, ast.AsyncWith)):
            issues.append(Issue("forbidden_construct", f"async code is not allowed{where}", node.lineno))
    return issues


def _check_tree(tree: ast.Module, fields: Sequence[str]) -> list[Issue]:
    issues: list[Issue] = []
    reward_fn = None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "compute_reward":
            reward_fn = node
    if reward_fn is None:
        nested = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                  and n.name == "compute_reward"]
        where = " (it is defined, but not at module level)" if nested else ""
        issues.append(Issue("no_compute_reward",
                            "define a module-level function `def compute_reward(obs, action, next_obs, info):` "
                            f"returning (total, components){where}"))
    else:
        issues.extend(_check_signature(reward_fn))
    issues.extend(_check_constructs(tree, " in reward code"))
    if reward_fn is not None and not any(i.code == "bad_signature" for i in issues):
        issues.extend(_check_fields(tree, reward_fn, fields))
        issues.extend(_check_reads_observations(reward_fn))
    return issues


def _check_fitness_tree(tree: ast.Module, fields: Sequence[str]) -> list[Issue]:
    """A fitness program: a module-level ``fitness(episode)``, the imports and constructs of reward code, and
    ``episode.<attribute>`` / ``episode.obs.<field>`` only where the Episode API and the env have them."""
    issues: list[Issue] = []
    found = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "fitness"]
    if not found:
        issues.append(Issue("no_fitness", "define a module-level function `def fitness(episode):` returning one "
                                          "number"))
    issues.extend(_check_constructs(tree, ""))
    if not found:
        return issues
    fn = found[-1]
    params = [a.arg for a in fn.args.posonlyargs + fn.args.args]
    required = len(params) - len(fn.args.defaults)
    if not params or required > 1 or any(d is None for d in fn.args.kw_defaults):
        return issues + [Issue("bad_signature", f"fitness must take exactly one positional parameter (episode); it "
                                                f"takes ({', '.join(params)})", fn.lineno)]
    episode = params[0]
    valid = {name.split(".", 1)[0] for name in fields}
    seen: set[str] = set()
    for node in ast.walk(fn):
        if not (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load)) or node.attr.startswith("_"):
            continue
        if isinstance(node.value, ast.Name) and node.value.id == episode and node.attr not in EPISODE_ATTRIBUTES:
            message = (f"{episode}.{node.attr} is not part of the episode; it has "
                       f"{', '.join(EPISODE_ATTRIBUTES)} and len({episode})")
        elif (isinstance(node.value, ast.Attribute) and node.value.attr in ("obs", "final")
              and isinstance(node.value.value, ast.Name) and node.value.value.id == episode
              and node.attr not in valid and node.attr not in _NAMED_METHODS):
            message = (f"{episode}.{node.value.attr}.{node.attr} is not an observation field; valid fields: "
                       f"{', '.join(fields)}")
        else:
            continue
        if message not in seen:
            seen.add(message)
            issues.append(Issue("unknown_field", message, node.lineno))
    return issues


def _check_reads_observations(fn: ast.FunctionDef) -> list[Issue]:
    params = [a.arg for a in fn.args.posonlyargs + fn.args.args]
    watched = {params[i] for i in (0, 2) if i < len(params)}
    if fn.args.vararg is not None:
        watched.add(fn.args.vararg.arg)
    read = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    if watched and not watched & read:
        return [Issue("unused_argument", "compute_reward never reads obs or next_obs, so it cannot tell good "
                                         "states from bad ones", fn.lineno, "warning")]
    return []


def _check_signature(fn: ast.FunctionDef) -> list[Issue]:
    args = fn.args
    positional = [a.arg for a in args.posonlyargs + args.args]
    required_kwonly = [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is None]
    expected = "(obs, action, next_obs, info)"
    required = len(positional) - len(args.defaults)
    takes_four = required <= 4 and (len(positional) >= 4 or args.vararg is not None) and not required_kwonly
    if not takes_four:
        star = [f"*{args.vararg.arg}"] if args.vararg is not None else []
        got = ", ".join(positional + star + required_kwonly)
        return [Issue("bad_signature",
                      f"compute_reward must take exactly four positional parameters {expected}; "
                      f"it takes ({got})", fn.lineno)]
    return []


def _check_import(node: ast.Import | ast.ImportFrom) -> list[Issue]:
    if isinstance(node, ast.ImportFrom):
        if node.level:
            return [Issue("forbidden_import", "relative imports are not allowed; import only math, numpy "
                                              "and typing", node.lineno)]
        module = node.module or ""
        if module == "__future__":
            return []
        names = ", ".join(alias.name for alias in node.names)
        issues = _check_module(module, node.lineno, f"from {module} import {names}")
        if issues:
            return issues
        available = _module_names()[module]
        missing = [alias.name for alias in node.names if alias.name != "*" and alias.name not in available]
        return [Issue("forbidden_import", f"`from {module} import {name}`: {module}.{name} is not available in "
                                          "reward code", node.lineno) for name in missing]
    issues = []
    for alias in node.names:
        issues.extend(_check_module(alias.name, node.lineno, f"import {alias.name}"))
    return issues


def _check_module(module: str, line: int, written: str) -> list[Issue]:
    """Refuse a module outside the allow-list, quoting the statement as ``written``."""
    if module in _module_names():
        return []
    root = module.split(".")[0]
    hint = ""
    if root in ("torch", "tensorflow", "jax"):
        hint = f"; {root} is not available: write the same math with numpy (import numpy as np)"
    elif root in ("os", "sys", "subprocess", "socket", "pathlib", "shutil", "io", "builtins", "importlib"):
        hint = "; reward code may not touch the system"
    elif root in ALLOWED_IMPORTS:
        importable = ", ".join(m for m in sorted(_module_names()) if m.startswith(root))
        hint = f"; of {root}, only {importable} can be imported"
    return [Issue("forbidden_import", f"`{written}` is not allowed: reward code may import only "
                                      f"math, numpy and typing{hint}", line)]


@cache
def _module_names() -> dict[str, frozenset[str]]:
    """Importable module names and the names each one offers."""
    from rewardsmith.sandbox.namespaces import safe_modules

    return {name: frozenset(module.names()) for name, module in safe_modules().items()}


def _check_fields(tree: ast.Module, reward_fn: ast.FunctionDef, fields: Sequence[str]) -> list[Issue]:
    """Refuse ``next_obs.name`` for names the env does not have, listing the valid ones."""
    params = [a.arg for a in reward_fn.args.posonlyargs + reward_fn.args.args]
    obs_names = {params[i] for i in (0, 2) if i < len(params)} | {"obs", "next_obs"}
    valid = {name.split(".", 1)[0] for name in fields}  # a nested field's group: next_obs.robot.joint_pos
    issues = []
    seen = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in obs_names and isinstance(node.ctx, ast.Load)
                and node.attr not in valid and node.attr not in _VIEW_METHODS
                and not node.attr.startswith("_") and node.attr not in seen):
            seen.add(node.attr)
            issues.append(Issue("unknown_field",
                                f"{node.value.id}.{node.attr} is not an observation field; "
                                f"valid fields: {', '.join(fields)}", node.lineno))
    return issues


class _Rewrite(ast.NodeTransformer):
    """Drop constructs that mean nothing at run time but that RestrictedPython refuses."""

    def visit_Module(self, node: ast.Module) -> ast.Module:
        node.body = [stmt for stmt in node.body if not (_is_main_guard(stmt) or _is_future_import(stmt))]
        self.generic_visit(node)
        if not node.body:
            node.body = [ast.Pass()]
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        node.returns = None
        for arg in node.args.posonlyargs + node.args.args + node.args.kwonlyargs:
            arg.annotation = None
        for arg in (node.args.vararg, node.args.kwarg):
            if arg is not None:
                arg.annotation = None
        self.generic_visit(node)
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.stmt:
        if node.value is None:
            return ast.copy_location(ast.Pass(), node)
        return ast.copy_location(ast.Assign(targets=[node.target], value=node.value), node)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.stmt:
        """``a[i] += v`` becomes ``a[i] = a[i] + v`` (RestrictedPython refuses the first, guards the second).

        Only where ``a`` is a name and ``i`` is built of names and constants, so evaluating them twice
        changes nothing; anything else is left for RestrictedPython to refuse.
        """
        self.generic_visit(node)
        target = node.target
        if not (isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) and _plain(target.slice)):
            return node
        load = ast.Subscript(value=ast.Name(target.value.id, ast.Load()), slice=target.slice, ctx=ast.Load())
        value = ast.BinOp(left=load, op=node.op, right=node.value)
        return ast.copy_location(ast.Assign(targets=[target], value=value), node)


def _plain(index: ast.expr | None) -> bool:
    """Names, constants, negated constants, and slices and tuples of those."""
    if index is None or isinstance(index, (ast.Name, ast.Constant)):
        return True
    if isinstance(index, ast.UnaryOp) and isinstance(index.op, ast.USub):
        return isinstance(index.operand, ast.Constant)
    if isinstance(index, ast.Slice):
        return _plain(index.lower) and _plain(index.upper) and _plain(index.step)
    if isinstance(index, ast.Tuple):
        return all(_plain(e) for e in index.elts)
    return False


def _is_main_guard(stmt: ast.stmt) -> bool:
    if not isinstance(stmt, ast.If) or not isinstance(stmt.test, ast.Compare):
        return False
    names = [n.id for n in ast.walk(stmt.test) if isinstance(n, ast.Name)]
    return names == ["__name__"]


def _is_future_import(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__"


_LINE = re.compile(r"^Line (\d+): (.*)$", re.S)


def _restricted_issue(message: str) -> Issue:
    match = _LINE.match(message)
    line, text = (int(match.group(1)), match.group(2)) if match else (None, message)
    if "starts with \"_\"" in text:
        text += " (names and attributes that start with an underscore are not available in reward code)"
    return Issue("restricted", text, line)

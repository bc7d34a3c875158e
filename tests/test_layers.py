"""The shape of the house, read from the source with ``ast`` (no module is imported).

Every import is read, module-scope, function-scope and ``if TYPE_CHECKING:`` alike: a
lazy import is still a dependency (harlequin's hygiene test explains why a static
contract alone is not enough), so the layer rules hold at every scope.

- **Layers.** The run contract (``r1tui.runs``, ``config``, ``errors``, ``quants``,
  ``present``, ``response_format``, ``calculator``) at the bottom; the stages (``data``,
  ``train``, ``export``, ``eval``, ``infer``, ``gpu``, ``dryrun``, ``generate``) above it; the
  orchestrator (``r1tui.pipeline``) above them; the CLI and the dashboard on top. Only
  the dashboard imports Textual; torch, transformers, unsloth and llama_cpp are
  imported at module scope only by the modules in ``HEAVY_AT_MODULE_SCOPE``.
- **No import cycles** among the modules' module-scope imports.
- **One home for each run path**: ``r1tui.runs.layout`` spells the run folder's names.
- **One name list per concept**: quant names in ``r1tui.quants``, stage names in the
  stage registry's declarations.
- **One event schema**: every ``emit("type", key=…)`` is declared in
  ``r1tui.runs.events.EVENT_SCHEMA``.

Failures list every violation as ``path:line: what``, so one run shows all of them.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "r1tui"

# ---------------------------------------------------------------- the layers

# calculator.py is pure arithmetic over the architecture presets that config validates
# against: it sits at the bottom beside config.
CONTRACT = ("r1tui.runs", "r1tui.config", "r1tui.errors", "r1tui.quants", "r1tui.present",
            "r1tui.response_format", "r1tui.calculator")
STAGES = ("r1tui.data", "r1tui.train", "r1tui.export", "r1tui.eval", "r1tui.infer", "r1tui.gpu", "r1tui.dryrun",
          "r1tui.generate", "r1tui.host")
PIPELINE = ("r1tui.pipeline",)
CLI = ("r1tui.cli", "r1tui.__main__")
DASHBOARD = ("r1tui.dashboard",)

# What each layer must not import, at any scope.
FORBIDDEN = {
    "contract": STAGES + PIPELINE + CLI + DASHBOARD,
    "stage": PIPELINE + CLI + DASHBOARD,
    "pipeline": CLI + DASHBOARD,
}

# Upward imports that are allowed, at most two: (importer, imported) -> why. The import
# line itself must carry a ``# layer: <why>`` comment (checked below).
ALLOWED_UPWARD: dict[tuple[str, str], str] = {}
MAX_ALLOWED_UPWARD = 2

# Known upward imports being removed right now. Not a place to park new ones: each entry
# is checked to still exist, so it has to be deleted here as soon as it is fixed.
PENDING_UPWARD: dict[tuple[str, str], str] = {}

HEAVY = ("torch", "transformers", "unsloth", "unsloth_zoo", "llama_cpp")
# The only modules that may import a heavy library at module scope; each is itself only
# ever imported lazily (inside a function), once the caller has chosen it.
HEAVY_AT_MODULE_SCOPE: dict[str, str] = {
    # `import unsloth` must run before transformers/trl/peft are imported: it patches them.
    "r1tui.train.unsloth_backend": "the unsloth backend, imported only when chosen",
    # A TrainerCallback subclass needs transformers when the class is defined.
    "r1tui.train.callback": "subclasses transformers.TrainerCallback; imported by the trainer only",
}


def _in(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def layer_of(module: str) -> str | None:
    for name, prefixes in (("contract", CONTRACT), ("stage", STAGES), ("pipeline", PIPELINE), ("cli", CLI),
                           ("dashboard", DASHBOARD)):
        if _in(module, prefixes):
            return name
    return None  # the package's own __init__


# ---------------------------------------------------------------- reading the source


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    tree: ast.Module
    lines: tuple[str, ...]

    @property
    def rel(self) -> str:
        return self.path.relative_to(REPO).as_posix()


@dataclass(frozen=True)
class Import:
    importer: Module
    target: str   # the module imported ("r1tui.gpu" for `from r1tui import gpu`)
    line: int
    scope: str    # "module" | "function" | "type_checking"

    def where(self) -> str:
        return f"{self.importer.rel}:{self.line}"

    def source_line(self) -> str:
        return self.importer.lines[self.line - 1] if self.line <= len(self.importer.lines) else ""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> tuple[Module, ...]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        found.append(Module(_module_name(path), path, ast.parse(text, filename=str(path)), tuple(text.splitlines())))
    return tuple(found)


@cache
def module_names() -> frozenset[str]:
    return frozenset(m.name for m in modules())


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk_scoped(node: ast.AST, scope: str = "module") -> Iterator[tuple[ast.AST, str]]:
    """Every node under ``node`` with the scope it runs in."""
    for child in ast.iter_child_nodes(node):
        child_scope = scope
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            child_scope = "function"
        if isinstance(child, ast.If) and _is_type_checking(child.test) and scope == "module":
            yield child, scope
            for part in child.body:
                yield part, "type_checking"
                yield from _walk_scoped(part, "type_checking")
            for part in child.orelse:
                yield part, scope
                yield from _walk_scoped(part, scope)
            continue
        yield child, child_scope
        yield from _walk_scoped(child, child_scope)


def _resolve_from(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.name.split(".")
    if module.path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(module: Module) -> Iterator[Import]:
    for node, scope in _walk_scoped(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno, scope)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_from(module, node)
            for alias in node.names:
                # `from r1tui import gpu` imports the module r1tui.gpu; `from r1tui.gpu import sample` r1tui.gpu
                candidate = f"{base}.{alias.name}"
                yield Import(module, candidate if candidate in module_names() else base, node.lineno, scope)


@cache
def all_imports() -> tuple[Import, ...]:
    return tuple(i for m in modules() for i in imports_of(m))


def _fake_module(code: str, name: str = "r1tui.fake") -> Module:
    """A module that is not on disk, for the checks' own tests."""
    path = REPO.joinpath(*name.split(".")).with_suffix(".py")
    return Module(name, path, ast.parse(code), tuple(code.splitlines()))


def _report(title: str, violations: list[str]) -> str:
    return f"{title} ({len(violations)}):\n  " + "\n  ".join(sorted(violations))


def _top(name: str) -> str:
    return name.split(".")[0]


# ---------------------------------------------------------------- 1. layers


def upward_imports() -> list[Import]:
    upward = []
    for imp in all_imports():
        layer = layer_of(imp.importer.name)
        if layer in FORBIDDEN and imp.target.startswith("r1tui") and _in(imp.target, FORBIDDEN[layer]):
            upward.append(imp)
    return upward


def test_the_source_was_found():
    names = module_names()
    assert len(names) > 50
    assert {"r1tui.config", "r1tui.runs.events", "r1tui.cli", "r1tui.dashboard.app"} <= names
    # the walk sees function-scope and TYPE_CHECKING imports too
    scopes = {i.scope for i in all_imports()}
    assert scopes == {"module", "function", "type_checking"}, scopes


def test_every_import_is_read_with_its_scope():
    module = _fake_module('''
from typing import TYPE_CHECKING
from r1tui import gpu
from . import layout
if TYPE_CHECKING:
    from r1tui.config import Config
def run():
    import torch
    from ..data.tokenizer import load_text_tokenizer
''', "r1tui.runs.fake")
    assert [(i.target, i.line, i.scope) for i in imports_of(module)] == [
        ("typing", 2, "module"), ("r1tui.gpu", 3, "module"), ("r1tui.runs.layout", 4, "module"),
        ("r1tui.config", 6, "type_checking"), ("torch", 8, "function"), ("r1tui.data.tokenizer", 9, "function")]


def test_no_upward_imports():
    """The contract imports no stage, the stages no orchestrator, the orchestrator no CLI
    or dashboard; at every scope."""
    violations = []
    for imp in upward_imports():
        key = (imp.importer.name, imp.target)
        if key in ALLOWED_UPWARD or key in PENDING_UPWARD:
            continue
        violations.append(f"{imp.where()}: {layer_of(imp.importer.name)} module {imp.importer.name} imports "
                          f"{imp.target} ({layer_of(imp.target)}, {imp.scope} scope): `{imp.source_line().strip()}`")
    assert not violations, _report("upward imports (move the code down, or pass it in from above)", violations)


def test_allowed_upward_imports_are_few_and_say_why():
    assert len(ALLOWED_UPWARD) <= MAX_ALLOWED_UPWARD, "at most two upward imports may be allowed"
    found = {(i.importer.name, i.target): i for i in upward_imports()}
    problems = []
    for key, why in ALLOWED_UPWARD.items():
        imp = found.get(key)
        if imp is None:
            problems.append(f"{key[0]} no longer imports {key[1]}: remove it from ALLOWED_UPWARD")
        elif "# layer:" not in imp.source_line():
            problems.append(f"{imp.where()}: the allowed upward import needs a `# layer: {why}` comment")
    assert not problems, _report("ALLOWED_UPWARD", problems)


def test_pending_upward_imports_are_still_there():
    """A pending entry that was fixed must leave PENDING_UPWARD, so it cannot come back."""
    found = {(i.importer.name, i.target) for i in upward_imports()}
    stale = [f"{importer} no longer imports {target}: delete it from PENDING_UPWARD"
             for importer, target in PENDING_UPWARD if (importer, target) not in found]
    assert not stale, _report("fixed pending upward imports", stale)


def test_only_the_dashboard_imports_textual():
    violations = [f"{i.where()}: {i.importer.name} imports {i.target} ({i.scope} scope)"
                  for i in all_imports()
                  if _top(i.target) == "textual" and not _in(i.importer.name, DASHBOARD)]
    assert not violations, _report("Textual outside r1tui.dashboard", violations)


def test_heavy_libraries_are_imported_lazily():
    """torch, transformers, unsloth and llama_cpp at module scope only where allowed:
    everywhere else inside the function that needs them."""
    violations = [f"{i.where()}: {i.importer.name} imports {i.target} at module scope; import it inside the "
                  f"function that uses it"
                  for i in all_imports()
                  if i.scope == "module" and _top(i.target) in HEAVY and i.importer.name not in HEAVY_AT_MODULE_SCOPE]
    # … and an allowed module is itself imported lazily, or its heavy import leaks into its importer
    violations += [f"{i.where()}: {i.importer.name} imports {i.target} (which imports a heavy library) at "
                   f"module scope; import it inside the function that uses it"
                   for i in all_imports() if i.scope == "module" and i.target in HEAVY_AT_MODULE_SCOPE]
    assert not violations, _report("heavy imports at module scope", violations)


def test_heavy_allow_list_is_current():
    actual = {i.importer.name for i in all_imports() if i.scope == "module" and _top(i.target) in HEAVY}
    stale = [f"{name} no longer imports a heavy library at module scope: remove it from HEAVY_AT_MODULE_SCOPE"
             for name in HEAVY_AT_MODULE_SCOPE if name not in actual]
    assert not stale, _report("stale HEAVY_AT_MODULE_SCOPE entries", stale)


# ---------------------------------------------------------------- 2. cycles

# Widgets and screens may know each other (a screen composes widgets, a widget opens a modal).
CYCLES_ALLOWED_IN = ("r1tui.dashboard.widgets", "r1tui.dashboard.screens")


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of more than one module, or one that imports itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in graph.get(node, ()):
                        components.append(sorted(component))
    return components


def module_graph() -> dict[str, set[str]]:
    """Module-scope imports at run time (not TYPE_CHECKING, not inside functions) between our modules."""
    graph: dict[str, set[str]] = {name: set() for name in module_names()}
    for imp in all_imports():
        if imp.scope == "module" and imp.target in graph:
            graph[imp.importer.name].add(imp.target)
    return graph


def test_strongly_connected_finds_a_cycle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    graph = module_graph()
    cycles = [c for c in strongly_connected(graph) if not all(_in(m, CYCLES_ALLOWED_IN) for m in c)]
    lines = []
    for cycle in cycles:
        members = set(cycle)
        edges = [f"{a} -> {b}" for a in cycle for b in sorted(graph[a] & members)]
        lines.append(" <-> ".join(cycle) + "\n      " + "\n      ".join(edges))
    assert not cycles, _report("import cycles (module scope)", lines)


# ---------------------------------------------------------------- 3. run paths live in runs/layout.py

RUN_FILE_NAMES = frozenset({"config.toml", "events.jsonl", "parity.json", "stages.json", "results.json"})
RUN_DIR_NAMES = frozenset({"gguf"})  # also a stage's name and a file type: only caught in a path join
LAYOUT = "r1tui/runs/layout.py"
# Keyword arguments whose string is prose for a reader, not a path the code opens.
PROSE_KEYWORDS = frozenset({"help", "description", "epilog", "message", "reason", "does", "writes"})
# (file, literal) -> why it is not a run path.
PATH_LITERALS_ALLOWED: dict[tuple[str, str], str] = {
    ("r1tui/config.py", "config.toml"): "the project's own config file in the working folder, not a run's",
}


def _docstring_nodes(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _prose_nodes(tree: ast.Module) -> set[int]:
    """String constants a human reads: docstrings, f-string parts, prose keyword arguments."""
    ids = _docstring_nodes(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            ids.update(id(part) for part in ast.walk(node))
        elif isinstance(node, ast.keyword) and node.arg in PROSE_KEYWORDS:
            ids.update(id(part) for part in ast.walk(node.value))
    return ids


def _is_path_call(call: ast.Call) -> bool:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if name in ("Path", "PurePath", "joinpath", "with_name"):
        return True
    # os.path.join(...)
    return (name == "join" and isinstance(func, ast.Attribute) and isinstance(func.value, ast.Attribute)
            and func.value.attr == "path")


def _path_context_nodes(tree: ast.Module) -> set[int]:
    """String constants used as a path component: ``x / "gguf"``, ``Path(a, "gguf")``,
    ``os.path.join(a, "gguf")``, ``p.joinpath("gguf")``, ``p.parent.name == "gguf"``."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            ids.update(id(side) for side in (node.left, node.right))
        elif isinstance(node, ast.Call) and _is_path_call(node):
            ids.update(id(arg) for arg in node.args)
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_is_parent_name(s) for s in sides):
                ids.update(id(s) for s in sides)
    return ids


def _is_parent_name(node: ast.expr) -> bool:
    """``p.parent.name`` or ``p.parents[1].name``: a folder's name (a Stage's ``.name`` is not)."""
    if not (isinstance(node, ast.Attribute) and node.attr == "name"):
        return False
    owner = node.value
    return (isinstance(owner, ast.Attribute) and owner.attr == "parent") or (
        isinstance(owner, ast.Subscript) and isinstance(owner.value, ast.Attribute) and owner.value.attr == "parents")


def _components(text: str) -> list[str]:
    return [part for part in text.replace("\\", "/").split("/") if part]


def run_path_literals() -> list[tuple[Module, int, str]]:
    found = []
    for module in modules():
        if module.rel == LAYOUT:
            continue
        prose, path_context = _prose_nodes(module.tree), _path_context_nodes(module.tree)
        for node in ast.walk(module.tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in prose:
                continue
            text = node.value
            if any(ch.isspace() for ch in text):
                continue  # a sentence, not a path
            parts = _components(text)
            names = [p for p in parts if p in RUN_FILE_NAMES]
            if id(node) in path_context:
                names += [p for p in parts if p in RUN_DIR_NAMES]
            for name in names:
                if (module.rel, name) not in PATH_LITERALS_ALLOWED:
                    found.append((module, node.lineno, name))
    return found


def test_run_paths_are_spelled_only_in_the_layout():
    violations = [f"{m.rel}:{line}: {name!r} — use r1tui.runs.layout.RunLayout: `{m.lines[line - 1].strip()}`"
                  for m, line, name in run_path_literals()]
    assert not violations, _report(f"run paths spelled outside {LAYOUT}", violations)


def test_path_literal_allow_list_is_current():
    def spelled(rel: str, name: str) -> bool:
        module = next((m for m in modules() if m.rel == rel), None)
        return module is not None and any(isinstance(n, ast.Constant) and isinstance(n.value, str)
                                          and name in _components(n.value) for n in ast.walk(module.tree))
    stale = [f"{rel} no longer spells {name!r}: remove it from PATH_LITERALS_ALLOWED"
             for rel, name in PATH_LITERALS_ALLOWED if not spelled(rel, name)]
    assert not stale, _report("stale PATH_LITERALS_ALLOWED entries", stale)


def test_the_path_check_catches_code_and_spares_prose():
    code = '''
"""Writes gguf/ and results.json."""
a = run_dir / "gguf" / "x.gguf"
b = os.path.join(run_dir, "events.jsonl")
c = "results.json"
d = f"see {run_dir}/results.json"
parser.add_argument("--x", help="results.json")
e = path.parent.name == "gguf"
f = {"stage": "gguf"} if stage.name == "gguf" else None
g = run_dir / "eval/results.json"
'''
    module = _fake_module(code)
    prose, path_context = _prose_nodes(module.tree), _path_context_nodes(module.tree)
    hits = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose \
                and not any(ch.isspace() for ch in node.value):
            parts = _components(node.value)
            hits += [(node.lineno, p) for p in parts if p in RUN_FILE_NAMES]
            if id(node) in path_context:
                hits += [(node.lineno, p) for p in parts if p in RUN_DIR_NAMES]
    assert sorted(hits) == [(3, "gguf"), (4, "events.jsonl"), (5, "results.json"), (8, "gguf"),
                            (10, "results.json")]


# ---------------------------------------------------------------- 4. one name list per concept

QUANT_NAMES = frozenset({"Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "F16", "BF16", "F32"})
QUANTS_HOME = "r1tui/quants.py"
STAGE_NAMES = frozenset({"generate", "prepare", "train", "merge", "gguf", "quantize", "parity", "eval"})
STAGES_HOME = "r1tui/pipeline/builtin.py"


# (file, the names the literal holds) -> why it is not a second copy of the list. A table
# keyed by quant or stage (a dict) is data about each, not a list, and is not checked.
NAME_LISTS_ALLOWED: dict[tuple[str, frozenset[str]], str] = {
    # llama.cpp's per-tensor rules, not the list of quant types: which mixes widen attn_v
    # and ffn_down, and which files keep output.weight at their own type.
    ("r1tui/calculator.py", frozenset({"Q4_K_M", "Q5_K_M"})): "llama.cpp's use_more_bits rule",
    ("r1tui/calculator.py", frozenset({"Q8_0", "F16", "Q6_K"})): "llama.cpp's output.weight rule",
}


def _literal_lists(tree: ast.Module) -> Iterator[tuple[ast.AST, list[str]]]:
    """Tuple, list and set literals with their string items (``Literal[...]`` included)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            yield node, [i.value for i in node.elts if isinstance(i, ast.Constant) and isinstance(i.value, str)]


def _lists_of(names: frozenset[str], at_least: int, home: str, among: tuple[Module, ...] | None = None) -> list[str]:
    found = []
    for module in modules() if among is None else among:
        if module.rel == home:
            continue
        for node, strings in _literal_lists(module.tree):
            hits = [s for s in strings if s in names]
            if len(set(hits)) >= at_least and (module.rel, frozenset(hits)) not in NAME_LISTS_ALLOWED:
                found.append(f"{module.rel}:{node.lineno}: a {type(node).__name__.lower()} of {', '.join(hits)}: "
                             f"`{module.lines[node.lineno - 1].strip()}`")
    return found


def test_quant_names_are_listed_only_in_quants():
    violations = _lists_of(QUANT_NAMES, 2, QUANTS_HOME)
    assert not violations, _report(f"quant name lists outside {QUANTS_HOME} (use r1tui.quants)", violations)


def test_the_name_list_check_catches_lists_not_tables():
    module = _fake_module('''
STEPS = ("prepare", "train", "eval")
ok = stage in ("merge", "gguf")
LABELS = {"prepare": "p", "train": "t", "eval": "e"}
QUANT: Literal["Q4_K_M", "Q8_0"] = "Q4_K_M"
''')
    assert [v.split(": a ")[0] for v in _lists_of(STAGE_NAMES, 3, "", (module,))] == ["r1tui/fake.py:2"]
    assert [v.split(": a ")[0] for v in _lists_of(QUANT_NAMES, 2, "", (module,))] == ["r1tui/fake.py:5"]


def test_stage_names_are_listed_only_in_the_registry():
    violations = _lists_of(STAGE_NAMES, 3, STAGES_HOME)
    assert not violations, _report(f"hard-coded stage lists outside {STAGES_HOME} (read the registry)",
                                   violations)


# ---------------------------------------------------------------- 5. the event schema

ENVELOPE_KEYWORDS = frozenset({"stage"})  # emit(type, stage=None, **data): stage is the envelope's


@dataclass(frozen=True)
class Emit:
    module: Module
    line: int
    type: str | None       # None: not a string literal
    keys: tuple[str, ...]  # the keywords passed by name (a **mapping is checked by EventWriter.emit at run time)


def _forwards(function: ast.AST | None, type_arg: ast.expr) -> bool:
    """``def emit(self, type, stage=None, **data): self.inner.emit(type, stage=stage, **data)``:
    a sink wrapping another passes its caller's type on (the caller's literal is what is checked)."""
    if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)) or function.name != "emit":
        return False
    params = {a.arg for a in (*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs)}
    return isinstance(type_arg, ast.Name) and type_arg.id in params


def emits() -> list[Emit]:
    found = []
    for module in modules():
        for node, function in _calls_with_function(module.tree):
            # `x.emit(...)`, and a bare `emit(...)` (an alias such as `emit = events.emit`)
            if not ((isinstance(node.func, ast.Attribute) and node.func.attr == "emit")
                    or (isinstance(node.func, ast.Name) and node.func.id == "emit")):
                continue
            if not node.args and not any(k.arg == "type" for k in node.keywords):
                continue
            first = node.args[0] if node.args else next(k.value for k in node.keywords if k.arg == "type")
            if _forwards(function, first):
                continue
            type_ = first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None
            keys = tuple(k.arg for k in node.keywords if k.arg is not None and k.arg not in ENVELOPE_KEYWORDS | {"type"})
            found.append(Emit(module, node.lineno, type_, keys))
    return found


def _calls_with_function(tree: ast.AST, function: ast.AST | None = None) -> Iterator[tuple[ast.Call, ast.AST | None]]:
    """Every call with the innermost function it is in (None at module scope)."""
    for child in ast.iter_child_nodes(tree):
        inner = child if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
        if isinstance(child, ast.Call):
            yield child, function
        yield from _calls_with_function(child, inner)


def stage_blocks() -> list[tuple[Module, int]]:
    """Calls of r1tui.runs.events.stage(events, name, **inputs) (as `stage` or `events.stage`)."""
    found = []
    for module in modules():
        imported_as = {alias.asname or alias.name for node in ast.walk(module.tree)
                       if isinstance(node, ast.ImportFrom) and node.module == "r1tui.runs.events"
                       for alias in node.names if alias.name == "stage"}
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Call):
                func = node.func
                if (isinstance(func, ast.Name) and func.id in imported_as) or (
                        isinstance(func, ast.Attribute) and func.attr == "stage" and isinstance(func.value, ast.Name)
                        and func.value.id == "events"):
                    found.append((module, node.lineno))
    return found


def _schema() -> dict[str, frozenset[str]]:
    events = importlib.import_module("r1tui.runs.events")
    if not hasattr(events, "EVENT_SCHEMA"):
        pytest.skip("r1tui.runs.events.EVENT_SCHEMA (event type -> its payload keys) does not exist yet")
    return events.EVENT_SCHEMA


def test_every_emitted_event_is_declared():
    schema = _schema()
    violations = []
    for emit in emits():
        where = f"{emit.module.rel}:{emit.line}"
        if emit.type is None:
            violations.append(f"{where}: the event type is not a string literal, so it cannot be checked: "
                              f"`{emit.module.lines[emit.line - 1].strip()}`")
            continue
        if emit.type not in schema:
            violations.append(f"{where}: emits {emit.type!r}, which EVENT_SCHEMA does not declare")
            continue
        undeclared = [k for k in emit.keys if k not in schema[emit.type]]
        if undeclared:
            violations.append(f"{where}: {emit.type!r} with undeclared key(s) {', '.join(undeclared)} "
                              f"(declared: {', '.join(sorted(schema[emit.type])) or 'none'})")
    # stage(events, name, **inputs) writes stage_started / stage_finished / error
    if stage_blocks():
        missing = [t for t in ("stage_started", "stage_finished", "error") if t not in schema]
        if missing:
            module, line = stage_blocks()[0]
            violations.append(f"{module.rel}:{line}: stage(...) emits {', '.join(missing)}, "
                              f"which EVENT_SCHEMA does not declare")
    assert not violations, _report("events not in r1tui.runs.events.EVENT_SCHEMA", violations)


def test_the_schema_is_the_list_of_types():
    schema = _schema()
    events = importlib.import_module("r1tui.runs.events")
    assert all(isinstance(keys, frozenset) for keys in schema.values())
    if hasattr(events, "EVENT_TYPES"):
        assert set(schema) == set(events.EVENT_TYPES), "EVENT_TYPES and EVENT_SCHEMA name different types"


def test_the_emit_scan_sees_the_pipeline():
    types = {e.type for e in emits()}
    assert {"metric", "log", "stage_started", "stage_finished"} <= types, types
    assert stage_blocks(), "no stage(events, ...) call found: the scan is broken"


# ---------------------------------------------------------------- readers of the event schema

READERS = ("r1tui/runs/reducer.py", "r1tui/runs/logs.py", "r1tui/runs/alerts.py", "r1tui/runs/diagnosis.py")


def _keys_read(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """``data.get("k")``, ``data["k"]`` (and the same on ``d`` or ``.data``): payload keys read."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and node.args and isinstance(node.args[0], ast.Constant):
            receiver, key = node.func.value, node.args[0].value
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            receiver, key = node.value, node.slice.value
        else:
            continue
        name = receiver.attr if isinstance(receiver, ast.Attribute) else getattr(receiver, "id", None)
        if name in ("data", "d") and isinstance(key, str):
            yield node.lineno, key


def test_readers_read_only_declared_payload_keys():
    """The reducer (and through it every panel and `r1tui runs`) and `r1tui logs` read only
    keys some writer may write; the reducer's handler for a type reads only that type's keys."""
    from r1tui.runs import reducer
    from r1tui.runs.events import EVENT_SCHEMA

    declared = set().union(*EVENT_SCHEMA.values())
    problems = []
    for rel in READERS:
        tree = ast.parse((REPO / rel).read_text(encoding="utf-8"))
        problems += [f"{rel}:{line}: reads {key!r}, which no event type declares"
                     for line, key in _keys_read(tree) if key not in declared]
        if rel.endswith("reducer.py"):
            functions = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
            for type_, handler in reducer._HANDLERS.items():
                body = [functions[handler.__name__]]
                if type_ == "gpu":
                    body.append(functions["apply_sample"])
                if type_ == "stage_progress":
                    body.append(functions["_quant_progress"])
                for function in body:
                    problems += [f"{rel}:{line}: the {type_} handler reads {key!r}, not declared for {type_}"
                                 for line, key in _keys_read(function) if key not in EVENT_SCHEMA[type_]]
    assert not problems, "\n".join(problems)


"""The package's floors, read from its import statements (every `import`, also those inside functions):

1. model files (`cgdmer_hf/*_cgdmer.py`, copied as remote code) import only each other;
2. `data/` and the small support modules (`prompts`, `reports`, `samples`, `registration`, `metrics/`);
3. `training/`, `evaluation/` and `hub/`, side by side: one imports from another only names that package exports
   (its `__all__`), never a submodule or a private name;
4. `commands/` (with `cli`) and `benchmarks/`, which nothing imports back.

No import cycles between modules, at most five floors, and no module above the model files over 500 lines.
"""

import ast
import importlib
from pathlib import Path

import pytest

from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "cgdmer_hf"
SIDE_BY_SIDE = ("training", "evaluation", "hub")
MAX_FLOORS = 5
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    for path in sorted((REPO_ROOT / "benchmarks").glob("*.py")):
        found[f"benchmarks.{path.stem}"] = path
    return found


MODULES = _modules()


def _known(name: str) -> str:
    """The longest prefix of a dotted name that is one of our modules ('' for other packages)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def imports(module: str) -> list[tuple[str, str]]:
    """`(imported module, imported name or '')` of every import statement of `module` into our modules."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(_known(alias.name), "") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub, "") if sub in MODULES else (_known(target), alias.name))
    return [(target, name) for target, name in found if target and target != module]


EDGES = {module: imports(module) for module in MODULES}


def group(module: str) -> str:
    """The room of a module on the floor plan: model files, a subpackage, a top-level module, benchmarks."""
    parts = module.split(".")
    if parts[0] == "benchmarks":
        return "benchmarks"
    if len(parts) == 1:
        return "cgdmer_hf"
    if parts[1].endswith("_cgdmer"):
        return "model files"
    return "commands" if parts[1] == "cli" else parts[1]


def is_model_file(module: str) -> bool:
    return group(module) == "model files"


def test_model_files_import_only_each_other():
    assert [m for m in MODULES if is_model_file(m)], "no model file found"
    bad = {m: sorted({t for t, _ in EDGES[m] if not is_model_file(t)}) for m in MODULES if is_model_file(m)}
    assert not {m: t for m, t in bad.items() if t}


def test_data_imports_no_upper_floor():
    upper = {*SIDE_BY_SIDE, "commands", "benchmarks"}
    bad = {m: sorted({t for t, _ in EDGES[m] if group(t) in upper}) for m in MODULES if group(m) == "data"}
    assert not {m: t for m, t in bad.items() if t}


def test_training_evaluation_and_hub_import_only_each_others_exports():
    bad = []
    for module in MODULES:
        for target, name in EDGES[module]:
            if group(module) in SIDE_BY_SIDE and group(target) in SIDE_BY_SIDE and group(target) != group(module):
                public = getattr(importlib.import_module(f"cgdmer_hf.{group(target)}"), "__all__", ())
                if target != f"cgdmer_hf.{group(target)}" or name not in public:
                    bad.append(f"{module} imports {target}{'.' + name if name else ''}")
    assert not bad


def test_nothing_imports_commands_or_benchmarks_back():
    bad = [f"{m} -> {t}" for m in MODULES for t, _ in EDGES[m]
           if group(t) in ("commands", "benchmarks") and group(m) not in ("commands", "benchmarks")]
    assert not bad


def _components() -> list[list[str]]:
    """Strongly connected components of the module graph (Tarjan), each a sorted list."""
    graph = {m: sorted({t for t, _ in EDGES[m] if t in MODULES}) for m in MODULES}
    index, low, stack, on_stack, components, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            components.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    return components


def test_no_import_cycles():
    assert [c for c in _components() if len(c) > 1] == []


def floors() -> dict[str, int]:
    """Floor of each room: 1 + the highest floor of the rooms it imports (model files at 1)."""
    rooms = {group(m) for m in MODULES}
    below = {r: {group(t) for m in MODULES if group(m) == r for t, _ in EDGES[m]} - {r} for r in rooms}
    found: dict[str, int] = {}

    def floor(room, seen=()):
        if room not in found:
            assert room not in seen, f"rooms in a circle: {seen}"
            found[room] = 1 + max((floor(r, (*seen, room)) for r in below[room]), default=0)
        return found[room]

    for room in rooms:
        floor(room)
    return found


def test_at_most_five_floors_in_order():
    found = floors()
    assert max(found.values()) <= MAX_FLOORS, found
    assert found["model files"] == 1
    assert found["data"] < min(found[r] for r in SIDE_BY_SIDE)
    assert max(found[r] for r in SIDE_BY_SIDE) < min(found["commands"], found["benchmarks"])


@pytest.mark.parametrize("module", [m for m in MODULES if m.startswith("cgdmer_hf") and not is_model_file(m)])
def test_no_module_above_the_model_files_is_over_500_lines(module):
    assert len(MODULES[module].read_text(encoding="utf-8").splitlines()) <= MAX_LINES

"""The package's import graph: layers only point down, and no module imports itself back in a circle.

Every import counts, at the top of a module or inside a function: a lazy import is still an arrow.

    interfaces -> workflows, evaluation, training -> pipelines -> models, poses, data -> media, files, errors
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "magicpose"

# Higher numbers may import lower ones and their peers; never a higher one.
LAYERS = {
    "interfaces": 4,
    "workflows": 3,
    "evaluation": 3,
    "training": 3,
    "pipelines": 2,
    "models": 1,
    "poses": 1,
    "data": 1,
    "media": 0,
    "audio": 0,
    "timing": 0,
    "files": 0,
    "errors": 0,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The magicpose modules `path` imports (`from a.b import c` counts as a.b.c when c is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name.startswith("magicpose."):
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    # The default model folder is data: its magicpose.py is the file diffusers' generic loader runs, no module
    files = {module_name(path): path for path in PACKAGE.rglob("*.py") if "default_model" not in path.parts}
    known = set(files)
    edges = {}
    for name, path in files.items():
        # importing a.b.c runs a/__init__ and a/b/__init__: arrows to packages above are not arrows of code
        edges[name] = {target for target in imported_modules(path, known) if not name.startswith(target + ".")}
        edges[name].discard(name)
    return edges


def layer(module: str) -> tuple[str, int] | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None  # the package's own __init__: a facade over the layers
    return parts[1], LAYERS[parts[1]]


def test_every_subpackage_and_top_module_has_a_layer():
    tops = {path.stem if path.is_file() else path.name for path in PACKAGE.iterdir()}
    tops = {name for name in tops if not name.startswith(("__", ".")) and name != "default_model"}
    assert tops <= set(LAYERS), f"give these a layer in LAYERS: {sorted(tops - set(LAYERS))}"


def test_layers_only_point_down():
    upward = []
    for source, targets in graph().items():
        if layer(source) is None:
            continue
        name, level = layer(source)
        for target in targets:
            target_name, target_level = layer(target)
            if target_level > level:
                upward.append(f"{source} ({name}) imports {target} ({target_name})")
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def test_no_import_cycles_between_modules_or_subpackages():
    edges = graph()
    packages: dict[str, set[str]] = {}
    for source, targets in edges.items():
        if layer(source) is not None:
            packages.setdefault(layer(source)[0], set()).update(
                layer(t)[0] for t in targets if layer(t) is not None and layer(t)[0] != layer(source)[0]
            )
    for nodes, what in ((edges, "modules"), (packages, "subpackages")):
        cycle = find_cycle(nodes)
        assert cycle is None, f"an import cycle of {what}: {' -> '.join(cycle)}"


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_a_cycle_and_accepts_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("command", sorted(p.stem for p in (PACKAGE / "interfaces" / "commands").glob("[!_]*.py")))
def test_cli_commands_do_not_import_each_other(command):
    source = f"magicpose.interfaces.commands.{command}"
    others = {t for t in graph()[source] if t.startswith("magicpose.interfaces.commands.")}
    assert not others, f"{source} imports {sorted(others)}: move what they share to interfaces/options.py"

"""The house as a newcomer reads it: the README's layout names what is there, and no module
imports one that imports it back."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from mlflow_platform.paths import ROOT

PACKAGES = {
    "mlflow_platform": ROOT / "src" / "mlflow_platform",
    "tracking_server": ROOT / "src" / "tracking_server",
    "environment_template": ROOT / "environment_template",
    "service_template": ROOT / "service_template",
}
# Made by installing, building, testing or running locally; never committed.
NOT_LAID_OUT = {"build", "dist", "__pycache__", ".local"}


def _layout_block() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```", 2)[1].strip("\n").splitlines()


def _named_paths() -> set[str]:
    """Each path in the layout block: a line starts with one or more names ("tests/, bench/");
    top-level lines name paths from the root, indented ones paths inside the folder above."""
    named: set[str] = set()
    parent = ""
    for line in _layout_block():
        match = re.match(r"^( {0,4})((?:[\w./]+, )*[\w./]+)(?:\s|$)", line)
        if not match or not re.search(r"[/.]", match.group(2)):
            continue  # a continuation of the previous line's description, indented further
        indent, names = match.groups()
        for name in names.split(", "):
            if indent:
                named.add(parent + name)
            else:
                named.add(name)
                parent = name if name.endswith("/") else parent
    return {n.rstrip("/") for n in named}


def test_the_readme_layout_names_every_folder_there_is():
    named = _named_paths()
    missing = sorted(n for n in named if not (ROOT / n).exists())
    assert missing == [], f"the README's layout names what does not exist: {missing}"
    top = {
        p.name
        for p in ROOT.iterdir()
        if not p.name.startswith(".") and p.name not in NOT_LAID_OUT
        and not p.name.endswith(".egg-info") and (p.is_dir() or p.suffix in {".py", ".yaml"})
    }  # fmt: skip
    tooling = {
        f"src/mlflow_platform/{p.name}"
        for p in PACKAGES["mlflow_platform"].iterdir()
        if p.is_dir() and p.name not in NOT_LAID_OUT
    }
    unnamed = sorted((top - named) | (tooling - named))
    assert unnamed == [], f"the README's layout does not name: {unnamed}"


def _module_imports() -> dict[str, set[str]]:
    """Each project module and the project modules it imports, at the top or inside a
    function (a cycle through a deferred import is still a cycle)."""
    files: dict[str, Path] = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    name = f"{node.module}.{alias.name}"
                    found.add(name if name in files else node.module)
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
        # A package's __init__ is imported with each of its modules: not an edge back.
        graph[module] = {
            m for m in found & files.keys() if m != module and not module.startswith(m + ".")
        }
    return graph


def test_no_module_imports_one_that_imports_it_back():
    graph = _module_imports()
    cycles: list[list[str]] = []
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = "open"
        path.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                cycles.append([*path[path.index(imported) :], imported])
            elif imported not in state:
                visit(imported)
        path.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert cycles == [], "\n".join(" -> ".join(cycle) for cycle in cycles)
    assert graph["tracking_server.bulk_store"], "the walk sees imports at all"

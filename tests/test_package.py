"""The package as a whole: a cheap import, a deliberate public API, and no import cycle."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import probekit

PACKAGE = Path(probekit.__file__).resolve().parent
HEAVY = ("torch", "transformers", "pandas", "numpy", "matplotlib")


def heavy_modules_after(code: str) -> list[str]:
    """The heavy libraries loaded by running `code` in a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint('HEAVY:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [m for m in proc.stdout.rpartition("HEAVY:")[2].strip().split(",") if m]


def test_import_probekit_loads_no_heavy_library():
    assert heavy_modules_after("import probekit") == []


def test_cli_help_loads_no_heavy_library():
    code = ("import sys\nfrom probekit.cli import main\n"
            "for args in (['--help'], ['probe', '--help'], ['train', '--help'], ['report', '--help']):\n"
            "    try:\n        main(args)\n    except SystemExit as e:\n        assert e.code == 0, (args, e.code)")
    assert heavy_modules_after(code) == []


def test_version_comes_from_the_distribution_metadata():
    assert probekit.__version__ == metadata.version(probekit.DISTRIBUTION)
    assert "probekit" in metadata.packages_distributions()["probekit"][0]
    assert probekit.DISTRIBUTION != "probekit"  # that PyPI name is an unrelated project


def test_public_names_are_listed_and_lazy():
    assert set(probekit._LAZY) | {"__version__"} == set(probekit.__all__)
    assert set(probekit.__all__) <= set(dir(probekit))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        probekit.nope  # noqa: B018


def test_lazy_map_resolves_where_the_module_exists():
    """Names whose module is present resolve to that module's object (modules still being written are skipped)."""
    present = {name: target for name, target in probekit._LAZY.items()
               if importlib.util.find_spec(target[0]) is not None}
    assert {"ProbekitError", "set_progress", "show_messages", "logger"} <= set(present)
    for name, (module, attribute) in present.items():
        try:
            expected = getattr(importlib.import_module(module), attribute)
        except ImportError:
            continue  # its module imports one that is not written yet; test_every_public_name_resolves says so
        assert getattr(probekit, name) is expected, name


def test_no_public_name_shadows_a_module():
    """`probekit.X` is never a function hiding a module `probekit/X.py` (or a subpackage)."""
    modules = {info.name for info in pkgutil.iter_modules([str(PACKAGE)])}
    assert sorted(modules & set(probekit.__all__)) == []


def test_every_public_name_resolves():
    """Every name in __all__ imports from its module (fails, naming them, while a module is missing)."""
    failures = {}
    for name in probekit.__all__:
        try:
            getattr(probekit, name)
        except Exception as exc:  # report all, not the first
            failures[name] = f"{type(exc).__name__}: {exc}"
    assert failures == {}


def internal_imports(path: Path, module: str) -> set[str]:
    """probekit modules that `module` imports anywhere in its source (top level, functions, TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                base_parts = parts if is_package else parts[:-1]
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    return {name for name in found if name == "probekit" or name.startswith("probekit.")}


def module_files(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package under `package` by dotted name (a package by its own name)."""
    files = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def running(module: str) -> set[str]:
    """What has started running when `module` runs: the packages above it, and itself."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Every probekit module → the probekit modules its imports run: those it names (names that are not
    modules dropped) and every package above them, whose `__init__` runs first — except the packages the
    importer is inside, which are already running when it runs."""
    files = module_files(package)
    graph = {}
    for name, path in files.items():
        named = {m for m in internal_imports(path, name) if m in files}
        graph[name] = {m for n in named for m in running(n) if m in files} - running(name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, …, a], or None (depth-first search with an explicit path)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_cycle_finder_finds_and_prints_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_internal_imports_reads_every_form(tmp_path):
    source = ("import probekit.log\nfrom probekit import errors\nfrom . import folders\n"
              "def f():\n    from .report import plots\n    import os\n")
    path = tmp_path / "x.py"
    path.write_text(source)
    found = internal_imports(path, "probekit.x")
    assert {"probekit.log", "probekit.errors", "probekit.folders", "probekit.report.plots"} <= found
    assert "os" not in found


def test_probekit_has_no_import_cycle():
    graph = import_graph()
    assert {"probekit", "probekit.cli", "probekit.core.log", "probekit.report", "probekit.views"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(source)
    return root / "probekit"


def test_an_import_counts_the_package_inits_it_runs(tmp_path):
    """`from probekit.report.plots import x` runs probekit/report/__init__.py first: an arrow to the package,
    found also inside a function; a package's own modules do not point back at it."""
    package = _tree(tmp_path, {
        "probekit/__init__.py": "from probekit import log\n",
        "probekit/log.py": "",
        "probekit/views.py": "def qk_view():\n    from probekit.report.plots import qk_scores\n",
        "probekit/report/__init__.py": "from probekit.report.site import build\n",
        "probekit/report/site.py": "from probekit.report import plots\nfrom probekit.views import head_view\n",
        "probekit/report/plots.py": "",
    })
    graph = import_graph(package)
    assert graph["probekit.views"] == {"probekit.report", "probekit.report.plots"}
    assert graph["probekit.report.site"] == {"probekit.report.plots", "probekit.views"}  # not its own package
    assert graph["probekit.log"] == set() and graph["probekit"] == {"probekit.log"}
    assert find_cycle(graph) == ["probekit.report", "probekit.report.site", "probekit.views", "probekit.report"]
    assert upward_imports(graph, floors=(("core", ("log",)), ("presentation", ("views", "report", "__init__")))) == []
    assert upward_imports(graph, floors=(("core", ("log", "views")), ("presentation", ("report", "__init__")))) == [
        "probekit.views (core) imports probekit.report (presentation)",
        "probekit.views (core) imports probekit.report.plots (presentation)"]


# ------------------------------------------------ floors: data flows one way

FLOORS = (
    ("core", ()),
    ("training", ()),
    ("models", ()),
    ("analyses", ("benchmarks",)),
    ("running", ()),
    ("presentation", ("report", "views", "figures", "palette", "diff", "demo", "cli", "__init__", "__main__")),
)
"""probekit's floors, lowest first: a module imports only from its own floor or the floors before it. Each
floor is a package of that name (and `benchmarks/` sits on the analyses floor); the presentation floor is the
top of the package."""


def floor_of(module: str, floors=FLOORS) -> int | None:
    """The floor (its index in `floors`) of a dotted module name: the first part of the name below the top
    package that names a module or a floor ("probekit.report.plots" → report's; "probekit" → __init__'s)."""
    level = {name: i for i, (floor, names) in enumerate(floors) for name in (floor, *names)}
    for part in module.split(".")[1:] or ["__init__"]:
        if part in level:
            return level[part]
    return None


def upward_imports(graph: dict[str, set[str]], floors=FLOORS) -> list[str]:
    """Every arrow of `graph` to a higher floor, as "importer (floor) imports imported (floor)"."""
    names = [floor for floor, _ in floors]
    found = []
    for importer, imported in sorted(graph.items()):
        for target in sorted(imported):
            low, high = floor_of(importer, floors), floor_of(target, floors)
            if low is not None and high is not None and high > low:
                found.append(f"{importer} ({names[low]}) imports {target} ({names[high]})")
    return found


def test_every_module_is_on_a_floor():
    assert sorted(name for name in import_graph() if floor_of(name) is None) == []


def test_no_module_imports_from_a_floor_above_it():
    """core → training → models → analyses → running → presentation: lazy imports inside functions and
    TYPE_CHECKING imports count, and so do the package `__init__`s an import runs."""
    assert upward_imports(import_graph()) == []

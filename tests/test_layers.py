"""The layers of the code (STYLE "Our habits" 2, COMMON "Keep it simple"),
checked on the source: imports run one way and no module imports itself
back through others, imports inside functions included; only the CLI prints.

Each rule reads the import graph built from the files' syntax trees, so a
forbidden import fails here even when it sits in a function that no test
calls.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Source folder -> the package it is installed as (pyproject's package-dir).
PACKAGES = {ROOT / "exodiff": "exodiff", ROOT / "kernels": "exodiff.kernels"}


def _modules():
    """module name -> (path, is_package) for every module of exodiff."""
    out = {}
    for folder, package in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if folder == ROOT / "exodiff" and parts[0] == "kernels":
                continue  # not there, but never count it twice
            is_package = parts[-1] == "__init__"
            name = ".".join((package, *(parts[:-1] if is_package else parts)))
            out[name] = (path, is_package)
    return out


MODULES = _modules()
TREES = {name: ast.parse(path.read_text(), str(path)) for name, (path, _) in MODULES.items()}


def _imports(name):
    """[(imported module, line)] of module ``name``: every import statement
    anywhere in it, resolved to exodiff's own modules (others dropped).
    ``from P import x`` counts as importing P.x when that is a module, else P."""
    path, is_package = MODULES[name]
    package = name if is_package else name.rpartition(".")[0]
    found = []
    for node in ast.walk(TREES[name]):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = ".".join(base[: len(base) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module
            for a in node.names:
                sub = f"{target}.{a.name}"
                found.append((sub if sub in MODULES else target, node.lineno))
    return [(t, line) for t, line in found if t == "exodiff" or t.startswith("exodiff.")]


GRAPH = {name: _imports(name) for name in MODULES}


def _in(module, *prefixes):
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _violations(importers, forbidden):
    """'importer:line imports target' for each import by a module under one
    of ``importers`` of a module under one of ``forbidden`` (either may be a
    predicate on module names instead)."""
    chosen = importers if callable(importers) else (lambda m: _in(m, *importers))
    banned = forbidden if callable(forbidden) else (lambda m: _in(m, *forbidden))
    return [f"{MODULES[m][0].relative_to(ROOT)}:{line} imports {t}"
            for m in MODULES if chosen(m)
            for t, line in GRAPH[m] if banned(t)]


BACKENDS = ("exodiff.backends", "exodiff.backend_cuda", "exodiff.kernels.step_numpy",
            "exodiff.kernels.step_numba")
RULES = {
    # kernels import nothing of exodiff above them
    "kernels": (("exodiff.kernels",), lambda m: not _in(m, "exodiff.kernels")),
    # analyses read runs through io, never through a backend or the driver
    "readers": (("exodiff.analysis", "exodiff.plots", "exodiff.report", "exodiff.export"),
                (*BACKENDS, "exodiff.driver", "exodiff.sweep", "exodiff.cli")),
    # io knows files, not science, time loops or backends
    "io": (("exodiff.io",),
           ("exodiff.analysis", "exodiff.plots", "exodiff.report", "exodiff.export",
            "exodiff.driver", *BACKENDS, "exodiff.sweep", "exodiff.validate", "exodiff.cli")),
    # config, model and layouts know no driver
    "setup": (("exodiff.config", "exodiff.config_types", "exodiff.config_schema", "exodiff.derived",
               "exodiff.model", "exodiff.layouts", "exodiff.grid",
               "exodiff.locality", "exodiff.units", "exodiff.physics"),
              ("exodiff.driver", "exodiff.io", "exodiff.analysis", "exodiff.sweep", "exodiff.cli")),
    # nothing imports the command line but ``python -m exodiff``
    "cli": (lambda m: m not in ("exodiff.cli", "exodiff.__main__"), ("exodiff.cli",)),
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_imports_run_one_way(rule):
    importers, forbidden = RULES[rule]
    assert not _violations(importers, forbidden), rule


def test_the_graph_sees_the_code():
    """The rules above read real edges (a graph that lost its imports would
    pass them all)."""
    assert any(t == "exodiff.io" for t, _ in GRAPH["exodiff.analysis"])
    assert any(t == "exodiff.io.reader" for t, _ in GRAPH["exodiff.io"])
    # an import inside a function counts: the CLI imports the driver in _run
    assert any(t == "exodiff.driver" for t, _ in GRAPH["exodiff.cli"])
    assert "exodiff.kernels.constants" in MODULES


def _cycles():
    """Strongly connected groups of modules (Tarjan): each is an import cycle."""
    index, low, on, stack, out = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w, _ in GRAPH[v]:
            if w not in MODULES:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or any(t == v for t, _ in GRAPH[v]):
                out.append(sorted(group))

    for v in MODULES:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert _cycles() == []


def _prints(name):
    """Lines of module ``name`` that write to the terminal: print(...),
    sys.stdout/sys.stderr writes."""
    lines = []
    for node in ast.walk(TREES[name]):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Name) and f.id == "print":
            lines.append(node.lineno)
        elif (isinstance(f, ast.Attribute) and f.attr in ("write", "flush")
              and isinstance(f.value, ast.Attribute) and f.value.attr in ("stdout", "stderr")
              and isinstance(f.value.value, ast.Name) and f.value.value.id == "sys"):
            lines.append(node.lineno)
    return lines


def test_only_the_cli_prints():
    assert _prints("exodiff.cli"), "the check finds the CLI's own prints"
    printing = {f"{MODULES[m][0].relative_to(ROOT)}": _prints(m)
                for m in MODULES if m != "exodiff.cli" and _prints(m)}
    assert printing == {}


def test_no_module_imports_private_names_of_another():
    """``from exodiff.x import _helper`` couples to what x keeps to itself
    (sweep once imported config's _suggest): make it public or move it."""
    private = []
    for name, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("exodiff")):
                private += [f"{MODULES[name][0].relative_to(ROOT)}:{node.lineno} imports {a.name}"
                            for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert private == []

"""The layering rule of docs/layout.md, read from the imports (module level and inside functions):
scripts -> harness -> registry -> methods -> extractors / data -> ground. The harness is imported
by scripts and the benchmarks' package (dif.experiments) only, a method's modules never import another method's, and no two
modules of the package import each other (a helper two modules share lives below both)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "dif"

# every module that belongs to one method (its registered module and the code only it uses)
FAMILIES = {
    "dif": {"dif.methods.dif", "dif.methods.dif_ensemble", "dif.fingerprint", "dif.detect", "dif.calibration",
            "dif.checkpoint", "dif.choose"},
    "deepfeaturex": {"dif.deepfeaturex"},
    "artificial": {"dif.artificial"},
}
HARNESS = {"dif.evaluate", "dif.distributed", "dif.lineage"}  # lineage streams images through evaluate
EXPERIMENTS = "dif.experiments"  # the benchmarks' work: with the scripts, above the harness


def is_experiment(mod: str) -> bool:
    return mod == EXPERIMENTS or mod.startswith(EXPERIMENTS + ".")


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The ``dif`` modules a file imports, wherever the import stands (a lazy import counts)."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "dif"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "dif":
                continue
            for a in node.names:  # ``from . import plots`` imports a module; ``from .x import f`` a name of x
                sub = f"{mod}.{a.name}"
                found.add(sub if (PKG.parent / Path(*sub.split("."))).with_suffix(".py").exists() else mod)
    return found - {me}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(PKG.rglob("*.py"))}


def family(mod: str) -> str | None:
    for name, members in FAMILIES.items():
        if any(mod == m or mod.startswith(m + ".") for m in members):
            return name
    return None


def test_the_import_reader_sees_lazy_and_relative_imports(tmp_path):
    g = graph()
    assert "dif.robustness" in g["dif.data"]  # a lazy import inside a function
    assert "dif.sampling" in g["dif.calibration"] and "dif.errors" in g["dif.deepfeaturex.train"]
    assert "dif.plots" in g["dif.methods.dif"]  # ``from .. import plots``


def test_nothing_in_the_package_imports_the_harness():
    bad = sorted(f"{m} imports {h}" for m, deps in graph().items() for h in deps & HARNESS
                 if m not in HARNESS and not is_experiment(m))
    assert not bad, bad


def test_nothing_outside_the_experiments_imports_them():
    bad = sorted(f"{m} imports {d}" for m, deps in graph().items() for d in deps
                 if is_experiment(d) and not is_experiment(m))
    assert not bad, bad


def test_a_method_never_imports_another_method():
    bad = []
    for mod, deps in graph().items():
        mine = family(mod)
        for d in deps:
            theirs = family(d)
            if mine is not None and theirs is not None and theirs != mine:
                bad.append(f"{mod} ({mine}) imports {d} ({theirs})")
            if mine is None and theirs is not None and mod not in {"dif.methods", "dif.lineage", "dif.blank"} \
                    and not is_experiment(mod):
                bad.append(f"{mod} (shared code) imports {d} ({theirs}): shared code must not depend on a method")
    assert not bad, bad


def test_no_two_modules_import_each_other():
    g = graph()
    seen: set[str] = set()
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            cycles.append(" -> ".join(stack[stack.index(node):] + [node]))
            return
        if node in seen:
            return
        seen.add(node)
        for d in sorted(g.get(node, ())):
            visit(d, stack + [node])

    for m in sorted(g):
        visit(m, [])
    assert not cycles, cycles


@pytest.mark.parametrize("module", ["dif.crop", "dif.sampling", "dif.errors"])
def test_ground_modules_import_only_the_ground(module):
    assert graph()[module] <= {"dif.errors"}

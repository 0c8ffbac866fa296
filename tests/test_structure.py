"""The package's import graph has no cycle (imports inside functions count), and every package says what it holds."""

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "labelers", "prompts")


def _modules() -> dict[str, Path]:
    mods = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            mods[name.removesuffix(".__init__")] = path
    return mods


def _targets(module: str, is_package: bool, node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    parts = module.split(".") if is_package else module.split(".")[:-1]
    if node.level:
        parts = parts[:len(parts) - node.level + 1]
        base = ".".join(parts + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def import_graph() -> nx.DiGraph:
    """Module -> module edges of every import statement in the project's packages (at any depth in the code);
    a package's own submodules and the package above a module are not edges."""
    mods = _modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(mods)
    for module, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in _targets(module, path.name == "__init__.py", node):
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target and target != module and not module.startswith(target + ".") \
                        and not target.startswith(module + "."):
                    graph.add_edge(module, target)
    return graph


def test_no_import_cycles():
    cycles = list(nx.simple_cycles(import_graph()))
    assert cycles == []


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert graph.has_edge("pipeline.run.stages", "pipeline.train.search")  # imported inside train_stage
    assert graph.has_edge("pipeline.run.runner", "labelers.rules")


@pytest.mark.parametrize("init", sorted(str(p.relative_to(ROOT)) for pkg in PACKAGES
                                        for p in (ROOT / pkg).rglob("__init__.py")))
def test_every_package_says_what_lives_there(init):
    doc = ast.get_docstring(ast.parse((ROOT / init).read_text()))
    assert doc and len(doc) > 20


def test_pipeline_keeps_only_shared_modules_at_its_top():
    flat = sorted(p.name for p in (ROOT / "pipeline").glob("*.py") if p.name != "__init__.py")
    assert flat == ["artifacts.py", "calibration.py", "cli.py", "config.py", "crossfit.py", "data.py", "encoders.py",
                    "errors.py", "metrics.py"]

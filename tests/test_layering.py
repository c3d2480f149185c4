"""core/ is a library: it must never import the UI stack."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"streamlit", "plotly", "pyvis"}


def test_core_sources_do_not_import_ui_packages():
    offenders = []
    for path in (ROOT / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_importing_every_core_module_loads_no_ui_package():
    modules = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts) for p in (ROOT / "core").rglob("*.py"))
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_components_do_not_import_torch():
    for path in (ROOT / "components").rglob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert "torch" not in imported, path.name


# core's packages from the bottom up; a package imports only from its own layer or the layers below it
# (docs/architecture.md, "Layers"). Method families may use each other's public names (BPD and EAGLE verify with
# the speculative step; SGD's served path reuses its skeleton format), with no cycle between two of them.
CORE_LAYERS = [
    {"config", "models", "sampling", "text", "trace", "prompts", "metrics", "engine", "recorder", "runner"},
    {"heads"},
    {"baselines", "speculative", "eagle", "draft_trees", "blockwise", "skeleton", "speed", "served", "quality",
     "cost_model", "replay", "reports"},
    {"registry", "bench", "train"},
]


def core_imports() -> dict[str, set[str]]:
    """Each top-level package or module of core/ -> the others it imports (lazy imports included)."""
    out: dict[str, set[str]] = {}
    for path in (ROOT / "core").rglob("*.py"):
        parts = path.relative_to(ROOT / "core").with_suffix("").parts
        if parts == ("__init__",):
            continue
        unit = parts[0]
        names = []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.append(node.module)
            elif isinstance(node, ast.Import):
                names += [a.name for a in node.names]
        used = {n.split(".")[1] for n in names if n.startswith("core.") and n.count(".") >= 1}
        out.setdefault(unit, set()).update(used - {unit})
    return out


def test_core_imports_point_down_the_layers():
    layer = {name: i for i, names in enumerate(CORE_LAYERS) for name in names}
    graph = core_imports()
    assert set(graph) <= set(layer), f"a core package no layer lists: {sorted(set(graph) - set(layer))}"
    upward = sorted(f"{a} -> {b}" for a, used in graph.items() for b in used if layer[b] > layer[a])
    assert upward == []


def test_no_two_method_families_import_each_other():
    graph = core_imports()
    both = sorted(f"{a} <-> {b}" for a, used in graph.items() for b in used if a < b and a in graph.get(b, set()))
    assert both == []

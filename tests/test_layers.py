"""Layers point one way: every import in geneface/ (lazy ones inside functions too) goes to a layer
its own layer may use. Reads the source with `ast`; nothing is imported.

LAYERS is the house's layer table (docs/architecture.md describes it): lowest first; each layer names
the module prefixes it holds and the layers it may import besides itself. A module belongs to the
layer with its longest matching prefix.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "geneface"

LAYERS: dict[str, tuple[tuple[str, ...], set[str]]] = {
    # layer:      (module prefixes,                 may import)
    "utils":      (("geneface.utils",),              set()),
    "contract":   (("geneface.data.contract", "geneface.data.landmarks"), set()),
    "models":     (("geneface.models",),             {"utils", "contract"}),
    "nerf":       (("geneface.nerf",),               {"utils", "contract"}),
    "media":      (("geneface.media",),              {"utils", "contract"}),
    "data":       (("geneface.data",),               {"utils", "contract", "models", "nerf", "media"}),
    "metrics":    (("geneface.metrics",),            {"utils", "contract", "models", "nerf", "media", "data"}),
    # dataset producers: peers, neither imports the other
    "processing": (("geneface.processing",),         {"utils", "contract", "media", "data", "metrics"}),
    "synthetic":  (("geneface.synthetic",),          {"utils", "contract", "media", "data"}),
    "viz":        (("geneface.viz",),                {"utils", "contract", "media", "data"}),
    # training
    "stages":     (("geneface.stages",),             {"utils", "contract", "models", "nerf", "media", "data",
                                                      "metrics"}),
    "callbacks":  (("geneface.callbacks",),          {"utils", "contract", "models", "nerf", "data", "metrics",
                                                      "stages"}),
    # inference drives trained stages through checkpoints (utils.checkpoints.load_stage) and the
    # FrameRenderer protocol, never by importing a stage
    "inference":  (("geneface.inference",),          {"utils", "contract", "models", "nerf", "media", "data",
                                                      "metrics", "processing"}),
    # the one-command pipeline runs the commands above as child processes and reads what they wrote
    "pipeline":   (("geneface.pipeline",),           {"utils", "contract", "media", "data"}),
    # entry modules: Hydra mains and other commands, thin; they may import anything. The web app is
    # one: it drives geneface.infer itself
    "entry":      (("geneface.train", "geneface.infer", "geneface.evaluate", "geneface.evaluate_lipsync",
                    "geneface.process", "geneface.synthetic.__main__", "geneface.viz.__main__",
                    "geneface.pipeline.__main__", "geneface.app"), {"*"}),
}
ROOT = {"geneface"}                      # geneface/__init__.py: imports nothing of its own

# Framework-free layers: no Lightning, no Hydra (or its OmegaConf) — plain Python and torch.
FRAMEWORKS = ("lightning", "pytorch_lightning", "hydra", "omegaconf")
FRAMEWORK_FREE = {"contract", "models", "nerf", "media", "metrics", "processing", "synthetic", "viz", "pipeline"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    best, best_len = None, -1
    for layer, (prefixes, _) in LAYERS.items():
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = layer, len(prefix)
    return best


SOURCES = sorted(PACKAGE.rglob("*.py"))
MODULES = {module_name(p) for p in SOURCES}


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every import statement in the file, wherever it stands (lazy
    imports in functions too). `from pkg import mod` names the module pkg.mod."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:                                   # relative: resolve against the package
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if sub in MODULES else base))
    return list(dict.fromkeys(found))                        # one entry per (line, module)




def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(PACKAGE.parent)}:{line}"


def test_every_module_has_a_layer():
    missing = [str(p.relative_to(PACKAGE.parent)) for p in SOURCES
               if layer_of(module_name(p)) is None and module_name(p) not in ROOT]
    assert not missing, f"modules in no layer of tests/test_layers.py LAYERS (add them): {missing}"


def test_imports_point_down():
    upward = []
    for path in SOURCES:
        source = module_name(path)
        layer = layer_of(source) if source not in ROOT else None
        allowed = LAYERS[layer][1] if layer else set()
        for line, target in imports(path):
            if not target.startswith("geneface"):
                continue
            to = layer_of(target)
            if to == layer or "*" in allowed or to in allowed:
                continue
            upward.append(f"{_where(path, line)}: {source} ({layer}) imports {target} ({to})")
    assert not upward, "imports that point up or sideways (see LAYERS):\n" + "\n".join(upward)


def test_framework_free_layers_import_no_lightning_or_hydra():
    bad = []
    for path in SOURCES:
        layer = layer_of(module_name(path))
        if layer not in FRAMEWORK_FREE:
            continue
        for line, target in imports(path):
            if target.split(".")[0] in FRAMEWORKS:
                bad.append(f"{_where(path, line)}: {module_name(path)} ({layer}) imports {target}")
    assert not bad, "Lightning/Hydra outside the layers that may use them:\n" + "\n".join(bad)


@pytest.mark.parametrize("low, high", [
    # the house rules the table must keep, whatever else changes in it
    (low, high)
    for low in ("utils", "contract", "data", "metrics", "media", "models", "nerf")
    for high in ("processing", "inference", "stages", "synthetic", "viz", "entry")
] + [(layer, "stages") for layer in LAYERS if layer not in ("stages", "callbacks", "entry")])
def test_the_table_keeps_the_house_rules(low, high):
    assert high not in LAYERS[low][1] and "*" not in LAYERS[low][1], f"{low} may not import {high}"


def test_no_import_cycles():
    """No two modules import each other, directly or round a loop (lazy imports count)."""
    graph = {module_name(p): {t for _, t in imports(p) if t in MODULES and t != module_name(p)} for p in SOURCES}
    graph = {m: {t for t in targets if not m.startswith(t + ".") and m != t} for m, targets in graph.items()}
    cycles, state = [], {}                                   # state: 1 on the stack, 2 done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" → ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)

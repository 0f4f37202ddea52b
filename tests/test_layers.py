"""The house keeps its floors: every import of visionlab points down the layers, no two modules import each other
(directly or around a circle), and no import hides inside a function to dodge one.

The modules are read with ``ast``, never imported, so that a circle cannot hide behind import order. The layers, top
to bottom (a module may import its own layer's siblings and anything below; ``data`` and ``models`` are siblings
that never import each other):

    visionlab (the package's __init__), __main__
    cli
    api
    manager
    trainer
    models | data
    components
    opt            the schema: dataclass configs, only util below it
    util

Imports under ``if TYPE_CHECKING:`` count like any other: a type that would point up the layers is in the wrong room
all the same.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "visionlab"

# floor of each top-level name of the package; equal floors of different names may not import each other
FLOORS = {"__main__": 9, "cli": 8, "api": 7, "manager": 6, "trainer": 5, "models": 4, "data": 4,
          "components": 3, "opt": 2, "util": 1}
TOP = 10  # the package's own __init__: the public API, above everything

# Imports inside a function are allowed only for these optional or heavy third-party modules, with the reason.
LAZY_ALLOWED = {
    "cv2": "OpenCV loads in ~0.2 s and only SIFT / keypoint drawing need it",
    "scipy": "SciPy's linalg and stats cost every 'import visionlab' ~0.3-0.5 s; only FID and Box-Cox need them",
    "torch.utils.tensorboard": "TensorBoard is an optional extra: runs work without it",
    "tensorboard": "TensorBoard is an optional extra: runs work without it",
    "torch.utils.cpp_extension": "the extension builder (setuptools, ninja) is needed only to build a native kernel",
}

# The one import of the package itself that sits inside a function, pointing down: the entry point imports the
# command line inside a try, so that Ctrl-C while PyTorch loads (seconds) is answered in one line, not a traceback.
STARTUP_IMPORT = ("visionlab.__main__", "visionlab.cli")


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported module, dotted (a module of the package, or a third-party name)
    line: int
    in_function: bool


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def read_imports(root: Path) -> tuple[set[str], list[Import]]:
    """Every module of the package at ``root`` and every import statement in it (relative ones resolved)."""
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    imports = []
    for name, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        inside = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                  for n in ast.walk(f) if n is not f}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # from . import x / from ..a import b
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                # "from pkg import mod" imports the module pkg.mod when it is one, else a name of pkg
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            else:
                continue
            for target in dict.fromkeys(targets):
                imports.append(Import(name, target, node.lineno, id(node) in inside))
    return set(files), imports


def floor(module: str) -> tuple[int, str]:
    """(floor, room) of a dotted module of the package: room is its top-level name."""
    parts = module.split(".")
    if len(parts) == 1:
        return TOP, ""
    return FLOORS.get(parts[1], 0), parts[1]


def upward(modules: set[str], imports: list[Import]) -> list[str]:
    found = []
    for imp in imports:
        if imp.target not in modules or imp.target == imp.source:
            continue
        (src_floor, src_room), (dst_floor, dst_room) = floor(imp.source), floor(imp.target)
        if dst_floor > src_floor or (dst_floor == src_floor and dst_room != src_room):
            found.append(f"{imp.source} -> {imp.target} (line {imp.line})")
    return found


def circles(modules: set[str], imports: list[Import]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan). A module that imports a name from its own
    package's ``__init__`` (``from visionlab.models import ViT`` inside models/) closes a circle with it: import the
    sibling module instead."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for imp in imports:
        if imp.target in modules and imp.target != imp.source:
            graph[imp.source].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # recursive: the package is a few levels deep
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def dodging(imports: list[Import], package: str) -> list[str]:
    """Imports inside a function: of the package itself never, of a third-party module only if LAZY_ALLOWED."""
    found = []
    for imp in imports:
        if not imp.in_function or (imp.source, imp.target) == STARTUP_IMPORT:
            continue
        allowed = any(imp.target == name or imp.target.startswith(name + ".") for name in LAZY_ALLOWED)
        if imp.target.split(".")[0] == package or not allowed:
            found.append(f"{imp.source} -> {imp.target} (line {imp.line})")
    return found


def problems(root: Path) -> dict[str, list]:
    modules, imports = read_imports(root)
    return {"upward": upward(modules, imports), "circles": circles(modules, imports),
            "inside functions": dodging(imports, root.name)}


# -- the package itself

def test_every_import_points_down_the_layers():
    assert problems(PACKAGE)["upward"] == []


def test_no_import_circles():
    assert problems(PACKAGE)["circles"] == []


def test_no_imports_inside_functions_but_the_listed_heavy_ones():
    assert problems(PACKAGE)["inside functions"] == []


def test_every_top_level_room_has_a_floor():
    modules, _ = read_imports(PACKAGE)
    rooms = {m.split(".")[1] for m in modules if "." in m}
    assert rooms <= set(FLOORS), f"rooms without a floor in FLOORS: {sorted(rooms - set(FLOORS))}"


def test_package_modules_are_found():  # the checks above would pass vacuously on an empty list
    modules, imports = read_imports(PACKAGE)
    assert {"visionlab.cli", "visionlab.opt", "visionlab.trainer.fit", "visionlab.util.io"} <= modules
    assert len([i for i in imports if i.target.startswith("visionlab.")]) > 100


# -- the checker catches what it is for, on a planted package

def plant(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "visionlab"
    for rel, text in {"__init__.py": "", "util/__init__.py": "", "models/__init__.py": "",
                      "trainer/__init__.py": "", "data/__init__.py": "", **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))
    return root


def test_planted_clean_package_passes(tmp_path):
    root = plant(tmp_path, {"util/io.py": "import json\n", "models/a.py": "from visionlab.util import io\n",
                            "trainer/t.py": "from visionlab.models.a import x\nfrom . import u\n",
                            "trainer/u.py": "from ..util.io import y\n"})
    assert problems(root) == {"upward": [], "circles": [], "inside functions": []}


def test_planted_upward_import_fails(tmp_path):
    root = plant(tmp_path, {"util/io.py": "from visionlab.trainer import t\n", "trainer/t.py": "",
                            "models/a.py": "from visionlab.data.d import z\n", "data/d.py": ""})
    found = problems(root)["upward"]
    assert found == ["visionlab.models.a -> visionlab.data.d (line 1)",
                     "visionlab.util.io -> visionlab.trainer.t (line 1)"]


def test_planted_type_checking_import_counts(tmp_path):
    root = plant(tmp_path, {"models/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                           "    from visionlab.trainer.t import T\n", "trainer/t.py": ""})
    assert problems(root)["upward"] == ["visionlab.models.a -> visionlab.trainer.t (line 3)"]


def test_planted_circle_fails(tmp_path):
    root = plant(tmp_path, {"trainer/a.py": "from visionlab.trainer import b\n",
                            "trainer/b.py": "from visionlab.trainer.c import f\n",
                            "trainer/c.py": "import visionlab.trainer.a\n"})
    assert problems(root)["circles"] == [["visionlab.trainer.a", "visionlab.trainer.b", "visionlab.trainer.c"]]


def test_planted_relative_circle_fails(tmp_path):
    root = plant(tmp_path, {"models/a.py": "from .b import g\n", "models/b.py": "from . import a\n"})
    assert problems(root)["circles"] == [["visionlab.models.a", "visionlab.models.b"]]


def test_planted_dodging_import_fails(tmp_path):
    root = plant(tmp_path, {"trainer/a.py": """
                                def f():
                                    from visionlab.trainer import b  # imported here: b imports this module
                                    import scipy.stats
                                    import yaml
                                    return b
                                """,
                            "trainer/b.py": "import cv2\n"})
    assert problems(root)["inside functions"] == ["visionlab.trainer.a -> visionlab.trainer.b (line 3)",
                                                  "visionlab.trainer.a -> yaml (line 5)"]


@pytest.mark.parametrize("target", sorted(LAZY_ALLOWED))
def test_every_allowed_lazy_import_has_a_reason(target):
    assert len(LAZY_ALLOWED[target].split()) >= 5

"""ARCHITECTURE.md's rules, checked by reading every import in trtnet/ (top-level and inside functions).

The walker parses each file with `ast`, so it sees imports that never run in a test session (a lazy import in
a branch no test takes). Two choices, both stated here because they decide what counts:
- an import under `if TYPE_CHECKING:` never runs: it is left out of the cycle graph (annotations only);
- an import goes to the module it names (for `from pkg import name`, to `pkg.name` when that is a module, else
  to `pkg`), and also to each package above it that the importer is not inside: `from trtnet.zoo.registry
  import x` in trtnet/parity.py runs trtnet/zoo/__init__.py, and so every model file. A package the importer
  is inside is already being imported (`trtnet/__init__.py` for every module), so that is no edge.

The checkers are plain functions of a tree root, so the same code runs on the real tree and on small trees
planted under tmp_path that prove it reports what it should.
"""

from __future__ import annotations

import ast
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What the ARCHITECTURE rules name, written out so that a change to them is a visible change here.
INTERPRETER_MAY_IMPORT = ("trtnet.errors", "trtnet.backend")  # and its own package, the stdlib, numpy, ml_dtypes
INTERPRETER_THIRD_PARTY = ("numpy", "ml_dtypes")
TENSORRT_HOME = "trtnet/backend.py"
TORCH_FAMILY = ("torch", "torchvision", "timm", "transformers", "yolov5", "ultralytics", "safetensors.torch")
# The only files that may import the torch family, each lazily (inside a function), and why.
TORCH_ALLOWED = {
    "trtnet/parity/__init__.py": "the parity helpers: PyTorch sources built, run and exported beside trtnet",
    "trtnet/parity/blame.py": "forward hooks on the PyTorch source's modules, to blame the first that departs",
    "trtnet/cli/commands.py": "`export-weights`, `verify` and `convert` check that PyTorch is there before they use it",
    "trtnet/export/convert.py": "`trtnet convert`: the one torch.load, of a checkpoint the user names",
    "trtnet/zoo/sources.py": "the builders of each model's PyTorch source (torchvision, timm, transformers, yolov5)",
    "trtnet/runtime/runner.py": "answers a caller who passed torch tensors in kind, on its stream (torch is imported by then)",
    "trtnet/bench/models.py": "the benchmark's PyTorch baseline: the source model loaded, and exported for the ONNX route",
    "trtnet/bench/gpu.py": "the benchmark times PyTorch eager on the GPU (CUDA events) beside the engines",
    "trtnet/bench/cpu.py": "the ONNX route's child process times torch's import apart from its export",
}
DSL_ONLY = ("trtnet.zoo", "trtnet.nn")  # packages that speak the DSL only
# Files beside backend.py that may import a module by computed name, and why: what they import is never trtnet's.
COMPUTED_IMPORT_ALLOWED = {
    "trtnet/cli/model_ref.py": "loads the user's own model that the command line names (package.module:NAME)",
}


@dataclass(frozen=True)
class Import:
    """One imported name of one import statement."""

    path: str  # the importing file, relative to the root: "trtnet/cache.py"
    line: int
    module: str  # the importing module: "trtnet.cache"
    target: str  # the module the statement names, absolute: "trtnet.runtime", "torch.nn"
    statement: str  # the statement as source: "from trtnet.runtime.engine import Engine"
    lazy: bool  # inside a function
    type_only: bool  # under `if TYPE_CHECKING:`

    def __str__(self) -> str:
        where = " (inside a function)" if self.lazy else ""
        return f"{self.path}:{self.line}: `{self.statement}`{where}"


@dataclass
class Tree:
    """The modules of a package tree, their syntax trees and every import in them."""

    modules: dict[str, str]  # module name -> file path relative to the root
    syntax: dict[str, ast.Module]  # file path -> its syntax tree
    imports: list[Import]

    @classmethod
    def scan(cls, root: Path, package: str = "trtnet") -> Tree:
        modules = {}
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root)
            parts = rel.with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = rel.as_posix()
        syntax, imports = {}, []
        for name, rel in modules.items():
            source = (root / rel).read_text()
            syntax[rel] = ast.parse(source, filename=rel)
            is_package = rel.endswith("__init__.py")
            _Walker(rel, name, is_package, set(modules), imports).visit(syntax[rel])
        return cls(modules, syntax, imports)

    def nodes_of(self, imp: Import) -> list[str]:
        """The modules of this tree that `imp` runs: the one it names (its longest known prefix), then each
        package above that one which does not hold the importer."""
        parts = imp.target.split(".")
        known = [".".join(parts[:n]) for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in self.modules]
        return known[:1] + [p for p in known[1:] if not (imp.module == p or imp.module.startswith(p + "."))]


class _Walker(ast.NodeVisitor):
    def __init__(self, path: str, module: str, is_package: bool, known: set[str], out: list[Import]) -> None:
        self.path, self.module, self.known, self.out = path, module, known, out
        self.package = module if is_package else module.rpartition(".")[0]
        self.depth = 0  # functions around the current node
        self.type_only = 0

    def visit_FunctionDef(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        ):
            self.type_only += 1
            for child in node.body:
                self.visit(child)
            self.type_only -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def _add(self, node: ast.stmt, target: str, statement: str) -> None:
        self.out.append(
            Import(self.path, node.lineno, self.module, target, statement, self.depth > 0, self.type_only > 0)
        )

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(node, alias.name, ast.unparse(ast.Import(names=[alias])))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:  # relative: `from . import x` in trtnet/zoo/vit.py is trtnet.zoo
            base = self.package.split(".")
            base = base[: len(base) - (node.level - 1)]
            base = ".".join(base + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        for alias in node.names:  # each name shown alone: `from x import a, b` is two imports, maybe two edges
            sub = f"{base}.{alias.name}"
            self._add(
                node,
                sub if sub in self.known else base,
                ast.unparse(ast.ImportFrom(module=node.module, names=[alias], level=node.level)),
            )


# -- the checks ---------------------------------------------------------------------------------------------


def import_cycles(tree: Tree) -> list[str]:
    """One message per group of modules that import each other (a strongly connected component of the graph
    of run-time imports): a shortest cycle through it, each step the file, line and statement, then any other
    import inside the group."""
    edges: dict[str, dict[str, list[Import]]] = {m: {} for m in tree.modules}
    for imp in tree.imports:
        for node in [] if imp.type_only else tree.nodes_of(imp):
            same = edges[imp.module].setdefault(node, [])
            if not any(i.line == imp.line for i in same):  # one statement, one edge: its first name stands for it
                same.append(imp)
    messages = []
    for group in _strongly_connected(edges):
        if len(group) == 1 and next(iter(group)) not in edges[next(iter(group))]:
            continue
        start = min(group)
        cycle = _shortest_cycle(edges, group, start)
        steps = [(edges[a][b][0], b) for a, b in zip(cycle, cycle[1:])]
        others = [
            (imp, b)
            for a in sorted(group)
            for b in sorted(edges[a])
            if b in group
            for imp in edges[a][b]
            if (imp, b) not in steps
        ]
        text = f"import cycle {' -> '.join(cycle)}:\n" + "\n".join(f"  {_step(tree, *s)}" for s in steps)
        if others:
            text += "\n  other imports inside this cycle:\n" + "\n".join(f"    {_step(tree, *s)}" for s in others)
        messages.append(text)
    return messages


def _step(tree: Tree, imp: Import, node: str) -> str:
    """An import as one step of a cycle; when the step is a package the import runs on the way, says so."""
    return str(imp) if tree.nodes_of(imp)[0] == node else f"{imp}, which runs {tree.modules[node]}"


def _strongly_connected(edges: dict[str, dict[str, list[Import]]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (import chains can be deeper than Python's recursion limit allows)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                groups.append(group)
    return sorted(groups, key=min)


def _shortest_cycle(edges: dict[str, dict[str, list[Import]]], group: set[str], start: str) -> list[str]:
    """start -> ... -> start, by breadth-first search inside the group."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(edges[node]):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [start, *reversed(path[:-1]), start] if node != start else [start, start]
            if child in group and child not in came_from:
                came_from[child] = node
                queue.append(child)
    raise AssertionError(f"{start} is in a strongly connected group but on no cycle")


def _top(target: str) -> str:
    return target.split(".")[0]


def _in(target: str, names: tuple[str, ...]) -> bool:
    return any(target == n or target.startswith(n + ".") for n in names)


def interpreter_breaks(tree: Tree) -> list[str]:
    """The interpreter reads TensorRT networks only: no DSL, modules or zoo, no third-party code but numpy."""
    out = []
    for imp in tree.imports:
        if not _in(imp.module, ("trtnet.interpreter",)):
            continue
        if _top(imp.target) == "trtnet":
            if not _in(imp.target, (*INTERPRETER_MAY_IMPORT, "trtnet.interpreter")):
                out.append(f"{imp}: the interpreter imports {imp.target}, which is not errors, backend or itself")
        elif _top(imp.target) not in sys.stdlib_module_names and not _in(imp.target, INTERPRETER_THIRD_PARTY):
            out.append(f"{imp}: the interpreter imports {imp.target}, which is not the stdlib, numpy or ml_dtypes")
    return out


def tensorrt_breaks(tree: Tree) -> list[str]:
    """Only backend.py imports TensorRT by name, and only it imports modules by computed names (which this
    walker cannot read)."""
    out = [
        f"{imp}: only {TENSORRT_HOME} imports TensorRT; ask it with get_trt()"
        for imp in tree.imports
        if _top(imp.target).startswith("tensorrt") and imp.path != TENSORRT_HOME
    ]
    for path, syntax in tree.syntax.items():
        if path == TENSORRT_HOME or path in COMPUTED_IMPORT_ALLOWED:
            continue
        for node in ast.walk(syntax):
            if isinstance(node, ast.Call) and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id in ("__import__", "import_module"))
            ):
                out.append(
                    f"{path}:{node.lineno}: `{ast.unparse(node)}`: an import by computed name, which the "
                    f"architecture test cannot follow (only {TENSORRT_HOME} may)"
                )
    return out


def dsl_only_breaks(tree: Tree, network_methods: set[str]) -> list[str]:
    """zoo/ and nn/ speak the DSL only: no trtnet.backend import, no INetworkDefinition.add_* call."""
    out = []
    for imp in tree.imports:
        if _in(imp.module, DSL_ONLY) and _in(imp.target, ("trtnet.backend",)):
            out.append(f"{imp}: zoo/ and nn/ speak the DSL only, not trtnet.backend")
    for name, path in tree.modules.items():
        if not _in(name, DSL_ONLY):
            continue
        for node in ast.walk(tree.syntax[path]):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in network_methods
            ):
                out.append(
                    f"{path}:{node.lineno}: `{node.func.attr}(...)`: a TensorRT network call in zoo/ or nn/; "
                    "the DSL grows an op instead"
                )
    return out


def torch_breaks(tree: Tree) -> list[str]:
    """The torch family only in the files of TORCH_ALLOWED, and there only inside functions."""
    out = []
    for imp in tree.imports:
        if not _in(imp.target, TORCH_FAMILY) or imp.type_only:
            continue
        if imp.path not in TORCH_ALLOWED:
            out.append(
                f"{imp}: {imp.target} outside the parity/export helpers (allowed: {', '.join(sorted(TORCH_ALLOWED))})"
            )
        elif not imp.lazy:
            out.append(f"{imp}: {imp.target} at import time; import it inside the function that needs it")
    return out


def _network_methods() -> set[str]:
    from trtnet.backend import get_trt

    return {m for m in dir(get_trt().INetworkDefinition) if m.startswith("add_")}


# The package's rooms, lowest first: a module may import its own layer or a lower one, never a higher one, so
# data flows one way (weights -> modules -> network -> plan -> engine) and the folder tree shows it. Every module
# of trtnet/ must be placed: a new one is placed here, where a reviewer sees the choice.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "foundations",
        (
            "trtnet._version",
            "trtnet.words",
            "trtnet.errors",
            "trtnet.backend",
            "trtnet.fileread",
            "trtnet.fileio",
            "trtnet.dtypes",
        ),
    ),
    # The interpreter and the runtime read TensorRT networks and plans, never models. Activation ranges are data
    # that both the calibrator writes and emission reads, so they sit below emission.
    (
        "networks and plans",
        (
            "trtnet.interpreter",
            "trtnet.runtime",
            "trtnet.target",
            "trtnet.quant.ranges",
            "trtnet.layouts",
            "trtnet.summary",
        ),
    ),
    ("emission", ("trtnet.graph", "trtnet.tensor", "trtnet.ops", "trtnet.weights", "trtnet.random_init")),
    ("modules", ("trtnet.nn",)),
    # Generation loops over a decoder's networks (emitted by the builder) or engines: beside the builds.
    ("models and builds", ("trtnet.zoo", "trtnet.builder", "trtnet.quant", "trtnet.generation")),
    ("checks", ("trtnet.onnx", "trtnet.parity")),
    ("exports", ("trtnet.export",)),
    ("faces", ("trtnet.cli", "trtnet.bench", "trtnet.__main__", "trtnet")),
)


def layer_of(module: str) -> int | None:
    """The index in LAYERS of `module`'s room: the longest listed name it is or is inside."""
    best, found = -1, None
    for i, (_, names) in enumerate(LAYERS):
        for n in names:
            inside = "." in n and module.startswith(n + ".")  # the package itself ("trtnet") holds only itself
            if (module == n or inside) and len(n) > best:
                best, found = len(n), i
    return found


def layer_breaks(tree: Tree) -> list[str]:
    """Every module is in a room, and every run-time import goes to the importer's layer or a lower one."""
    out = [
        f"{path}: module {name} is in no room of LAYERS; place it there"
        for name, path in tree.modules.items()
        if layer_of(name) is None
    ]
    for imp in tree.imports:
        if imp.type_only:
            continue
        low = layer_of(imp.module)
        for node in tree.nodes_of(imp)[:1]:  # the module named; the packages it runs on the way are the cycle test's
            high = layer_of(node)
            if low is not None and high is not None and high > low:
                out.append(
                    f"{imp}: {LAYERS[low][0]} ({imp.module}) imports {LAYERS[high][0]} ({node}), a higher "
                    "room; data flows one way"
                )
    return out


MAX_MODULE_LINES = 400  # a file a reviewer can hold in mind; split by role past this


def long_modules(root: Path, package: str = "trtnet") -> list[str]:
    """Files of the package over MAX_MODULE_LINES lines."""
    out = []
    for path in sorted((root / package).rglob("*.py")):
        n = len(path.read_text().splitlines())
        if n > MAX_MODULE_LINES:
            out.append(f"{path.relative_to(root).as_posix()}: {n} lines (at most {MAX_MODULE_LINES}); split it by role")
    return out


# -- the real tree ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tree() -> Tree:
    return Tree.scan(ROOT)


def _fail_on(messages: list[str], what: str) -> None:
    assert not messages, f"{len(messages)} {what}:\n" + "\n".join(messages)


def test_no_import_cycles(tree):
    _fail_on(import_cycles(tree), "import cycle(s) in trtnet/ (imports inside functions count)")


def test_interpreter_imports_nothing_of_the_dsl(tree):
    _fail_on(interpreter_breaks(tree), "interpreter import(s) outside errors/backend/stdlib/numpy")


def test_only_backend_imports_tensorrt(tree):
    _fail_on(tensorrt_breaks(tree), "TensorRT import(s) outside backend.py")


def test_zoo_and_nn_speak_the_dsl_only(tree):
    _fail_on(dsl_only_breaks(tree, _network_methods()), "TensorRT use(s) in zoo/ or nn/")


def test_torch_only_in_the_parity_and_export_helpers(tree):
    _fail_on(torch_breaks(tree), "torch import(s) outside the parity/export helpers")


def test_the_walker_sees_the_real_tree(tree):
    """The checks above pass vacuously if the walk finds nothing: it must see known imports of each kind."""
    seen = {(i.path, i.target, i.lazy) for i in tree.imports}
    assert ("trtnet/interpreter/_common.py", "trtnet.errors", False) in seen
    assert ("trtnet/parity/__init__.py", "torch", True) in seen  # lazy, inside a function
    assert "trtnet.interpreter.conv" in tree.modules and "trtnet.zoo" in tree.modules


def test_rooms_keep_data_flowing_one_way(tree):
    _fail_on(layer_breaks(tree), "import(s) against the rooms' order (LAYERS)")


def test_rooms_are_folders(tree):
    """The roles of ARCHITECTURE.md are folders with these modules (a rename or a move is a visible change here)."""
    rooms = {
        "builder": {"emit", "build", "progress", "cache"},
        "runtime": {"engine", "runner", "bindings", "cudart", "plan", "sidecar"},
        "quant": {"calibrate", "ranges"},
        "export": {"triton", "triton_config", "convert"},
        "onnx": {"parse", "check"},
        "cli": {"app", "commands", "verify", "model_ref"},
    }
    for room, members in rooms.items():
        have = {m.rsplit(".", 1)[1] for m in tree.modules if m.startswith(f"trtnet.{room}.")}
        assert members <= have, f"trtnet/{room}/ lacks {sorted(members - have)}"
    flat = sorted(m for m in tree.modules if m.count(".") == 1 and f"trtnet/{m.split('.')[1]}.py" in tree.modules[m])
    assert len(flat) <= 16, f"{len(flat)} modules stand flat in trtnet/: {flat}; group them into rooms"


def test_no_module_is_too_long_to_review():
    _fail_on(long_modules(ROOT), f"module(s) over {MAX_MODULE_LINES} lines")


# -- planted trees: the checks fail when they should ------------------------------------------------------


def _plant(root: Path, files: dict[str, str]) -> Tree:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return Tree.scan(root)


def test_a_planted_cycle_is_named_by_file_and_import(tmp_path):
    tree = _plant(
        tmp_path,
        {
            "trtnet/__init__.py": "",
            "trtnet/cache.py": "from trtnet.runtime import Engine\n",
            "trtnet/runtime.py": "import numpy as np\n\n\nclass Engine:\n    def folder(self):\n"
            "        from trtnet import cache\n        return cache\n",
            "trtnet/plain.py": "from trtnet.runtime import Engine\n",  # imports into the cycle: not part of it
        },
    )
    assert import_cycles(tree) == [
        "import cycle trtnet.cache -> trtnet.runtime -> trtnet.cache:\n"
        "  trtnet/cache.py:1: `from trtnet.runtime import Engine`\n"
        "  trtnet/runtime.py:6: `from trtnet import cache` (inside a function)"
    ]


def test_a_longer_planted_cycle_lists_every_import_inside_it(tmp_path):
    tree = _plant(
        tmp_path,
        {
            "trtnet/__init__.py": "",
            "trtnet/ops/__init__.py": "from . import core\n",
            "trtnet/ops/core.py": "def f():\n    import trtnet.tensor\n",
            "trtnet/tensor.py": "from trtnet.graph import Graph\nfrom trtnet.ops import core\n",
            "trtnet/graph.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from trtnet.tensor import T\n"
            "Graph = 1\n",  # type-only: not an edge
        },
    )
    assert import_cycles(tree) == [
        "import cycle trtnet.ops -> trtnet.ops.core -> trtnet.tensor -> trtnet.ops:\n"
        "  trtnet/ops/__init__.py:1: `from . import core`\n"
        "  trtnet/ops/core.py:2: `import trtnet.tensor` (inside a function)\n"
        "  trtnet/tensor.py:2: `from trtnet.ops import core`, which runs trtnet/ops/__init__.py\n"
        "  other imports inside this cycle:\n"
        "    trtnet/tensor.py:2: `from trtnet.ops import core`"
    ]
    tree = _plant(tmp_path, {"trtnet/graph.py": "def g():\n    from trtnet.tensor import T\n"})
    assert import_cycles(tree) == [
        "import cycle trtnet.graph -> trtnet.tensor -> trtnet.graph:\n"
        "  trtnet/graph.py:2: `from trtnet.tensor import T` (inside a function)\n"
        "  trtnet/tensor.py:1: `from trtnet.graph import Graph`\n"
        "  other imports inside this cycle:\n"
        "    trtnet/ops/__init__.py:1: `from . import core`\n"
        "    trtnet/ops/core.py:2: `import trtnet.tensor` (inside a function)\n"
        "    trtnet/tensor.py:2: `from trtnet.ops import core`, which runs trtnet/ops/__init__.py\n"
        "    trtnet/tensor.py:2: `from trtnet.ops import core`"
    ]


def test_a_cycle_through_a_package_init_is_found(tmp_path):
    """parity imports zoo.registry, which runs zoo/__init__.py, which imports a model file that imports parity."""
    tree = _plant(
        tmp_path,
        {
            "trtnet/__init__.py": "",
            "trtnet/parity.py": "from trtnet.zoo.registry import get_entry\n",
            "trtnet/zoo/__init__.py": "from trtnet.zoo.registry import get_entry\nfrom trtnet.zoo.yolo import y\n",
            # inside the package: an edge to helpers, none to zoo/__init__.py (which is what imported it)
            "trtnet/zoo/registry.py": "from trtnet.zoo.helpers import h\n",
            "trtnet/zoo/helpers.py": "h = 1\n",
            "trtnet/zoo/yolo.py": "def y():\n    from trtnet.parity import he_init\n",
        },
    )
    assert import_cycles(tree) == [
        "import cycle trtnet.parity -> trtnet.zoo -> trtnet.zoo.yolo -> trtnet.parity:\n"
        "  trtnet/parity.py:1: `from trtnet.zoo.registry import get_entry`, which runs trtnet/zoo/__init__.py\n"
        "  trtnet/zoo/__init__.py:2: `from trtnet.zoo.yolo import y`\n"
        "  trtnet/zoo/yolo.py:2: `from trtnet.parity import he_init` (inside a function)"
    ]


def test_planted_rule_breaks_are_named_by_file_and_import(tmp_path):
    tree = _plant(
        tmp_path,
        {
            "trtnet/__init__.py": "",
            "trtnet/backend.py": "import importlib\ntrt = importlib.import_module('tensorrt')\n",
            "trtnet/interpreter/__init__.py": "from trtnet.interpreter.conv import run\n",
            "trtnet/interpreter/conv.py": "import math\nimport numpy as np\nfrom trtnet.errors import E\n"
            "def run():\n    from trtnet.ops import conv\n    import scipy\n",
            "trtnet/nn/layers.py": "import tensorrt as trt\n",
            "trtnet/zoo/m.py": "from trtnet import backend\n\ndef f(net, x):\n    return net.add_convolution_nd(x)\n",
            "trtnet/weights.py": "import torch\n",
            "trtnet/parity/__init__.py": "import torch\n\ndef f():\n    import torchvision\n",
            "trtnet/graph.py": "def f():\n    return __import__('tensorrt_rtx_bindings')\n",
        },
    )
    assert interpreter_breaks(tree) == [
        "trtnet/interpreter/conv.py:5: `from trtnet.ops import conv` (inside a function): the interpreter imports "
        "trtnet.ops, which is not errors, backend or itself",
        "trtnet/interpreter/conv.py:6: `import scipy` (inside a function): the interpreter imports scipy, which is "
        "not the stdlib, numpy or ml_dtypes",
    ]
    assert tensorrt_breaks(tree) == [
        "trtnet/nn/layers.py:1: `import tensorrt as trt`: only trtnet/backend.py imports TensorRT; ask it with "
        "get_trt()",
        "trtnet/graph.py:2: `__import__('tensorrt_rtx_bindings')`: an import by computed name, which the "
        "architecture test cannot follow (only trtnet/backend.py may)",
    ]
    assert dsl_only_breaks(tree, {"add_convolution_nd"}) == [
        "trtnet/zoo/m.py:1: `from trtnet import backend`: zoo/ and nn/ speak the DSL only, not trtnet.backend",
        "trtnet/zoo/m.py:4: `add_convolution_nd(...)`: a TensorRT network call in zoo/ or nn/; the DSL grows an "
        "op instead",
    ]
    allowed = ", ".join(sorted(TORCH_ALLOWED))
    assert torch_breaks(tree) == [
        "trtnet/parity/__init__.py:1: `import torch`: torch at import time; import it inside the function that needs it",
        f"trtnet/weights.py:1: `import torch`: torch outside the parity/export helpers (allowed: {allowed})",
    ]


def test_planted_room_breaks_are_named(tmp_path):
    tree = _plant(
        tmp_path,
        {
            "trtnet/__init__.py": "",
            "trtnet/runtime/__init__.py": "",
            "trtnet/runtime/engine.py": "def f():\n    from trtnet.zoo import resnet50\n",  # runtime knows no models
            "trtnet/zoo/__init__.py": "from trtnet.nn import Module\n",  # downhill: fine
            "trtnet/nn/__init__.py": "Module = object\n",
            "trtnet/attic.py": "",  # in no room
        },
    )
    assert layer_breaks(tree) == [
        "trtnet/attic.py: module trtnet.attic is in no room of LAYERS; place it there",
        "trtnet/runtime/engine.py:2: `from trtnet.zoo import resnet50` (inside a function): networks and plans "
        "(trtnet.runtime.engine) imports models and builds (trtnet.zoo), a higher room; data flows one way",
    ]
    (tmp_path / "trtnet/attic.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    assert long_modules(tmp_path) == [
        f"trtnet/attic.py: {MAX_MODULE_LINES + 1} lines (at most {MAX_MODULE_LINES}); split it by role"
    ]

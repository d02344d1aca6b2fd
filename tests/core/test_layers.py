"""The backend's imports point down the layers of docs/architecture.md (a module imports only its own layer or lower)."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "backend" / "dreamor"
#: layer of each subpackage / top-level module; evaluate and server sit side by side and do not import each other.
LAYERS = {"errors": 0, "files": 0, "threads": 0, "body": 1, "data": 2, "models": 3, "refine": 4, "evaluate": 5, "server": 5, "train": 6, "clean": 6,
          "info": 7, "cli": 7, "__init__": 7}
#: packages above dreamor that import bpy (Blender); only the CLI reaches them, lazily.
BPY_PACKAGES = {"bpy", "dreamor_demo", "blender_addon"}


def _unit(parts: list[str]) -> str:
    return parts[0] if parts else "__init__"


def _imports(path: Path, root: Path = PACKAGE):
    """(line, imported top unit of dreamor) for every dreamor import in ``path``, lazy ones included."""
    rel = path.relative_to(root).with_suffix("").parts
    pkg = list(rel[:-1])
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - (node.level - 1)] + (node.module.split(".") if node.module else [])
                if not base:  # `from . import x` at the top level
                    yield from ((node.lineno, a.name) for a in node.names)
                    continue
                yield node.lineno, base[0]
            elif node.module and node.module.split(".")[0] == "dreamor":
                yield node.lineno, _unit(node.module.split(".")[1:])
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "dreamor":
                    yield node.lineno, _unit(a.name.split(".")[1:])


def test_every_module_has_a_layer():
    units = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in PACKAGE.glob("*") if p.suffix == ".py" or
             (p.is_dir() and (p / "__init__.py").exists())}
    assert units - set(LAYERS) == set(), "new top-level module: give it a layer in LAYERS and docs/architecture.md"


def test_imports_point_down():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = _unit(list(path.relative_to(PACKAGE).with_suffix("").parts[:1]))
        for line, other in _imports(path):
            if other == own or other not in LAYERS:
                continue
            sideways = {own, other} == {"evaluate", "server"}
            if LAYERS[other] > LAYERS[own] or sideways:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} imports {other}")
    assert wrong == []


def _top_imports(path: Path):
    """(line, top-level module name) for every absolute import in ``path``, lazy ones included."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and not node.level and node.module:
            yield node.lineno, node.module.split(".")[0]
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, a.name.split(".")[0]) for a in node.names)


def test_dreamor_never_imports_bpy():
    """bpy lives in blender_addon/ and dreamor_demo/; `dreamor demo` (cli.py) is the one lazy way up."""
    wrong = [f"{p.relative_to(PACKAGE)}:{line} imports {name}" for p in sorted(PACKAGE.rglob("*.py"))
             for line, name in _top_imports(p) if name in BPY_PACKAGES and
             not (p.name == "cli.py" and name == "dreamor_demo")]
    assert wrong == []


def test_the_checker_sees_an_upward_import(tmp_path):
    """The rule can fail: a lazy import of the engine inside a body module is seen."""
    (tmp_path / "body").mkdir()
    (tmp_path / "body" / "x.py").write_text("def f():\n    from ..refine.api import refine\n    from .skeleton import PARENTS\n")
    assert list(_imports(tmp_path / "body" / "x.py", tmp_path)) == [(2, "refine"), (3, "body")]
    (tmp_path / "body" / "y.py").write_text("def f():\n    import bpy.types\n")
    assert list(_top_imports(tmp_path / "body" / "y.py")) == [(2, "bpy")]

"""The rules of the house (README, "Architecture"): lotterylib's wings import only downward,
core < pruning < analysis < stages < workflow, and no module imports itself through others (no circle).
Every import counts, those inside functions too."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lotterylib"
WINGS = ("core", "pruning", "analysis", "stages", "workflow")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> set[str]:
    """The lotterylib modules `name` imports (`from .x import y`: x.y where that is a module, else x)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in MODULES}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                target = f"{source}.{alias.name}"
                found.add(target if target in MODULES else source)
    return {m for m in found if m in MODULES} - {name}


GRAPH = {name: imports(name) for name in MODULES}


def wing(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in WINGS else None


def test_every_module_lives_in_a_wing():
    outside = [n for n in MODULES if wing(n) is None and n not in ("lotterylib", "lotterylib.__main__")]
    assert not outside, f"modules outside the wings {WINGS}: {outside}"
    assert set(WINGS) <= {wing(n) for n in MODULES}


@pytest.mark.parametrize("name", sorted(n for n in MODULES if wing(n)))
def test_a_module_imports_only_its_own_wing_and_those_below(name):
    rank = WINGS.index(wing(name))
    upward = sorted(m for m in GRAPH[name] if wing(m) is None or WINGS.index(wing(m)) > rank)
    assert not upward, f"{name} ({wing(name)}) imports {upward}: a wing imports only {WINGS[:rank + 1]}"


def test_there_is_no_import_circle():
    state: dict[str, int] = {}   # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(GRAPH[name]):
            if state.get(target) == 1:
                circle = path[path.index(target):] + [target]
                pytest.fail("import circle: " + " -> ".join(circle))
            if target not in state:
                visit(target, path + [target])
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])


def test_the_checks_see_imports():
    """Not vacuous: the graph holds the imports it should (a downward edge of each wing, one inside a function)."""
    assert "lotterylib.core.tasks" in GRAPH["lotterylib.core.data"]
    assert "lotterylib.pruning.masks" in GRAPH["lotterylib.pruning.magnitude"]
    assert "lotterylib.pruning.subnetworks" in GRAPH["lotterylib.analysis.lottery"]
    assert "lotterylib.stages.config" in GRAPH["lotterylib.stages"]          # inside stages.open
    assert "lotterylib.stages.registry" in GRAPH["lotterylib.workflow.pipeline"]

"""The layer rules of docs/architecture.md, read from every module's imports (ast, nothing imported)."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, Tuple

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("humimic_perception", "humimic_retarget", "humimic_driver")
#: subpackages of a stage that are offline tools (their layer is humimic_experiments')
OFFLINE = ("export", "offline")
CORE, STAGE, OFFLINE_LAYER, BRINGUP = range(4)


def layer(module: str) -> Tuple[int, str]:
    """(layer, stage) of a humimic module name; stage is '' outside the stage packages."""
    parts = module.split(".")
    if parts[0] == "humimic_core":
        return CORE, ""
    if parts[0] in STAGES:
        offline = len(parts) > 1 and parts[1] in OFFLINE
        return (OFFLINE_LAYER if offline else STAGE), parts[0]
    if parts[0] == "humimic_experiments":
        return OFFLINE_LAYER, ""
    if parts[0] == "humimic_bringup":
        return BRINGUP, ""
    raise AssertionError(f"{module}: in no layer of docs/architecture.md")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> Iterator[Tuple[int, str]]:
    """(line, module) of every humimic import in a file, also those inside functions."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            # `from pkg import module` names a module; `from module import name` names the module
            yield node.lineno, max((n for n in names if _is_module(n)), key=len, default=node.module)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


def _is_module(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def violations() -> list[str]:
    found = []
    for path in sorted(ROOT.glob("humimic_*/**/*.py")):
        own, own_stage = layer(module_name(path))
        for line, target in imports(path):
            if not target.startswith("humimic_"):
                continue
            other, other_stage = layer(target)
            where = f"{path.relative_to(ROOT)}:{line} imports {target}"
            if other > own:
                found.append(f"{where}: a lower layer imports a higher one")
            elif own == STAGE and other == STAGE and other_stage != own_stage:
                found.append(f"{where}: one stage's live code imports another stage")
    return found


def test_no_import_runs_from_a_lower_layer_to_a_higher_one() -> None:
    assert violations() == []


def test_core_imports_nothing_but_core() -> None:
    for path in ROOT.glob("humimic_core/*.py"):
        assert all(not t.startswith("humimic_") or t.startswith("humimic_core") for _, t in imports(path)), path


def test_the_checker_sees_a_wrong_way_import(tmp_path: Path) -> None:
    """The rules catch what they are meant to: core -> stage, stage -> stage, live -> offline."""
    assert layer("humimic_core.robot_config")[0] < layer("humimic_driver.bus")[0]
    assert layer("humimic_retarget.offline.fit_tool")[0] > layer("humimic_retarget.retargeter")[0]
    assert layer("humimic_perception.export.onnx_export")[0] > layer("humimic_perception.perception")[0]
    assert layer("humimic_experiments.rerun")[0] < layer("humimic_bringup.graph")[0]
    # the face twin stands in for the robot-face camera: live code of the perception stage
    assert layer("humimic_perception.sim.face_twin") == (STAGE, "humimic_perception")
    bad = tmp_path / "bad.py"
    bad.write_text("from humimic_driver.sim import emulated_bus\nimport humimic_core.paths\n")
    assert [t for _, t in imports(bad)] == ["humimic_driver.sim.emulated_bus", "humimic_core.paths"]

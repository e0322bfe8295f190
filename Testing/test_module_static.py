"""Static checks of the Slicer extension that need no Slicer: widget names, CMake listings, Qt-free Lib."""
from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("DCASegmentation", "DCATraining")
BOUND_PARAMETERS = {"DCASegmentation": {"inputVolume", "outputSegmentation", "overlap", "attentionOpacity"},
                    "DCATraining": {"datasetFolder", "runFolder", "preset", "iterations", "device",
                                    "correctionVolume", "correctionSegmentation", "rankingScore"}}
QT_MODULES = {"qt", "ctk", "PythonQt"}
# Widget classes our .ui files connect mrmlSceneChanged to that declare a setMRMLScene slot (read in
# Slicer's headers at v5.8.1 and main); qMRMLSegmentationShow3DButton, for one, has none.
HAS_SET_MRML_SCENE_SLOT = {"qMRMLNodeComboBox", "qMRMLTableView"}


def ui_widget_names(ui_file: Path) -> set[str]:
    return {w.get("name") for w in ET.parse(ui_file).getroot().iter("widget")}


def ui_parameter_names(ui_file: Path) -> dict[str, str]:
    """``{widget name: SlicerParameterName}`` of the widgets bound to the parameter node."""
    found = {}
    for widget in ET.parse(ui_file).getroot().iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                found[widget.get("name")] = prop.findtext("string")
    return found


def used_ui_names(source: str) -> set[str]:
    return set(re.findall(r"\bui\.([A-Za-z_]\w*)", source))


def cmake_list(cmake_text: str, variable: str) -> list[str]:
    match = re.search(rf"set\({variable}\s+(.*?)\)", cmake_text, re.S)
    assert match, f"no set({variable} ...) in CMakeLists.txt"
    return match.group(1).split()


def module_files(module: str) -> tuple[set[str], set[str]]:
    """(Python scripts, resources) that exist in the module folder, relative to it."""
    folder = ROOT / module
    scripts = {p.relative_to(folder).as_posix() for p in folder.rglob("*.py") if "__pycache__" not in p.parts}
    resources = {p.relative_to(folder).as_posix() for p in (folder / "Resources").rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts}
    return scripts, resources


@pytest.mark.parametrize("module", MODULES)
def test_scene_connections_reach_only_widgets_with_a_set_mrml_scene_slot(module):
    root = ET.parse(ROOT / module / "Resources" / "UI" / f"{module}.ui").getroot()
    classes = {w.get("name"): w.get("class") for w in root.iter("widget")}
    receivers = [c.findtext("receiver") for c in root.iter("connection")
                 if c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"]
    assert receivers
    assert {r: classes[r] for r in receivers if classes[r] not in HAS_SET_MRML_SCENE_SLOT} == {}


@pytest.mark.parametrize("module", MODULES)
def test_every_ui_name_the_code_uses_exists_in_the_ui_file(module):
    names = ui_widget_names(ROOT / module / "Resources" / "UI" / f"{module}.ui")
    sources = [ROOT / module / f"{module}.py", *(ROOT / module / f"{module}Lib").glob("*.py")]
    used = set().union(*(used_ui_names(p.read_text(encoding="utf-8")) for p in sources))
    assert used, "the module uses no widgets at all?"
    assert used - names == set()


@pytest.mark.parametrize("module", MODULES)
def test_every_script_and_resource_is_listed_in_the_module_cmakelists(module):
    cmake = (ROOT / module / "CMakeLists.txt").read_text(encoding="utf-8").replace("${MODULE_NAME}", module)
    listed_scripts = set(cmake_list(cmake, "MODULE_PYTHON_SCRIPTS"))
    listed_resources = set(cmake_list(cmake, "MODULE_PYTHON_RESOURCES"))
    scripts, resources = module_files(module)
    assert listed_scripts == scripts
    assert listed_resources == resources
    assert "WITH_GENERIC_TESTS" in cmake and f"slicer_add_python_unittest(SCRIPT {module}.py)" in cmake


@pytest.mark.parametrize("module", MODULES)
def test_parameter_names_in_the_ui_are_fields_of_the_parameter_node(module):
    tree = ast.parse((ROOT / module / f"{module}.py").read_text(encoding="utf-8"))
    wrapper = next(node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
                   and any(getattr(d, "id", "") == "parameterNodeWrapper" for d in node.decorator_list))
    fields = {stmt.target.id for stmt in wrapper.body if isinstance(stmt, ast.AnnAssign)}
    bound = ui_parameter_names(ROOT / module / "Resources" / "UI" / f"{module}.ui")
    assert set(bound.values()) <= fields
    assert BOUND_PARAMETERS[module] <= set(bound.values())


@pytest.mark.parametrize("module", MODULES)
def test_the_lib_is_qt_free(module):
    for path in (ROOT / module / f"{module}Lib").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module}
        assert imported & QT_MODULES == set(), path.name


def test_extension_cmakelists_names_pytorch_and_existing_modules():
    cmake = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    assert re.search(r'set\(EXTENSION_DEPENDS\s+"PyTorch"\)', cmake)
    for key in ("HOMEPAGE", "CATEGORY", "CONTRIBUTORS", "DESCRIPTION", "ICONURL", "SCREENSHOTURLS"):
        assert re.search(rf"set\(EXTENSION_{key}\s+\"[^\"]+\"\)", cmake), key
    for module in re.findall(r"add_subdirectory\((\w+)\)", cmake):
        assert (ROOT / module / "CMakeLists.txt").is_file(), module
    assert "dcaseg/*.py" in cmake                 # the engine ships inside the extension
    assert Image.open(ROOT / "DCA.png").size == (128, 128)

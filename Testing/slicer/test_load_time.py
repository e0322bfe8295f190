"""The load-time rule: both module files import in a fresh Slicer, where torch & co. are not installed."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

TORCH_FREE = True
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("fresh_slicer_load.py")


def fresh_load(settings: Path) -> dict:
    done = subprocess.run([sys.executable, str(SCRIPT), str(ROOT), str(settings)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_both_modules_load_without_torch_and_list_the_bundled_model(tmp_path):
    report = fresh_load(tmp_path)
    has_slicer_core = subprocess.run([sys.executable, "-c", "import slicer.util"], cwd=ROOT.parent,
                                     capture_output=True).returncode == 0
    assert report["slicer"] == ("slicer-core" if has_slicer_core else "stand-in")
    assert report["errors"] == {}
    assert report["classes"] == {m: [m + s for s in ("", "Widget", "Logic", "Test")]
                                 for m in ("DCASegmentation", "DCATraining")}
    bundled = [m for m in report["models"] if m["bundled"]]
    assert [m["key"] for m in bundled] == ["dca-demo-synthetic-abdomen.zip"]
    assert bundled[0]["name"] and bundled[0]["problem"] == ""
    assert report["imported_heavy"] == []


def test_a_module_file_that_needs_torch_at_load_time_is_caught(tmp_path):
    """The check itself can fail: a copy of the repository whose module imports torch at load time."""
    copy = tmp_path / "repo"
    for part in ("dcaseg", "DCASegmentation", "DCATraining"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    module = copy / "DCATraining" / "DCATraining.py"
    module.write_text(module.read_text(encoding="utf-8").replace("import qt\n", "import qt\nimport torch\n", 1),
                      encoding="utf-8")
    done = subprocess.run([sys.executable, str(SCRIPT), str(copy), str(tmp_path / "settings")],
                          capture_output=True, text=True, timeout=120)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "torch" in report["errors"]["DCATraining"]

"""Reload re-reads the Lib packages and the engine, not only the module file."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH_FREE = True

SCRIPT = """
import sys
sys.path[:0] = [{root!r}, {lib!r}]
import DCASegmentationLib.parameters as first
import dcaseg.grouping
from DCASegmentationLib.module_reload import forget_modules
forgotten = forget_modules()
assert "DCASegmentationLib.parameters" in forgotten and "dcaseg.grouping" in forgotten, forgotten
assert not any(n.startswith(("DCASegmentationLib", "DCATrainingLib", "dcaseg")) for n in sys.modules)
import DCASegmentationLib.parameters as second
assert second is not first and second.SegmentChoices is not first.SegmentChoices
print("reloaded")
"""


def test_forget_modules_makes_the_next_import_read_the_files_again():
    script = SCRIPT.format(root=str(ROOT), lib=str(ROOT / "DCASegmentation"))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "reloaded"

"""``python -m dcaseg`` runs the command line (used by Slicer as ``PythonSlicer -m dcaseg``)."""
import sys

from .cli import main

sys.exit(main())

"""Qt-free logic of the DCA Training module (runs under PyPI slicer-core in tests)."""

"""Qt-free logic of the DCA Segmentation module: parameters, model registry, engine process,
result import, attention overlays, device info and dependency installation."""

"""DCA Segmentation: one-click abdominal organ segmentation with head/medium/tail attention overlays.

A thin shell: the work lives in the Qt-free ``DCASegmentationLib`` and in the ``dcaseg`` engine,
which runs in a background process (``PythonSlicer -m dcaseg segment``).
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Annotated

import qt
import slicer
import vtk
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

if importlib.util.find_spec("dcaseg") is None:  # running from a source checkout via "additional module paths"
    _SOURCE_ROOT = Path(__file__).resolve().parent.parent
    if (_SOURCE_ROOT / "dcaseg" / "__init__.py").is_file():
        sys.path.append(str(_SOURCE_ROOT))

from DCASegmentationLib import dependencies  # noqa: E402
from DCASegmentationLib.attention import OverlayDisplay, show_overlays  # noqa: E402
from DCASegmentationLib.device_info import DeviceQuery  # noqa: E402
from DCASegmentationLib.model_registry import ModelRegistry  # noqa: E402
from DCASegmentationLib.module_reload import forget_modules  # noqa: E402
from DCASegmentationLib.parameters import OPACITY_RANGE, OVERLAP_RANGE, SegmentChoices  # noqa: E402
from DCASegmentationLib.segment_runner import SegmentOutcome, SegmentRequest, SegmentRun  # noqa: E402

DEFAULTS = SegmentChoices()
POLL_INTERVAL_MS = 100


class DCASegmentation(ScriptedLoadableModule):
    """Module metadata."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("DCA Segmentation")
        self.parent.categories = [_("Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["DCA Segmentation contributors"]
        self.parent.helpText = _(
            "Segment abdominal organs in CT with a DCA model (Divide, Conquer and Aggregate: head/medium/tail "
            "expert decoders). Pick a CT and a model, click <b>Segment organs</b>; the expert attention overlays "
            "show which expert the model trusted where.")
        self.parent.acknowledgementText = _(
            "Method: DCA (CVPR 2026). Colour maps: matplotlib's inferno, viridis and cividis.")


@parameterNodeWrapper
class DCASegmentationParameterNode:
    """GUI state of the module; ``modelKey`` and ``device`` are filled by the widget's combo boxes."""

    inputVolume: slicer.vtkMRMLScalarVolumeNode
    outputSegmentation: slicer.vtkMRMLSegmentationNode
    modelKey: str = DEFAULTS.model
    device: str = DEFAULTS.device
    overlap: Annotated[float, WithinRange(*OVERLAP_RANGE)] = DEFAULTS.overlap
    computeAttention: bool = DEFAULTS.show_attention
    showHead: bool = "head" in DEFAULTS.experts_shown
    showMedium: bool = "medium" in DEFAULTS.experts_shown
    showTail: bool = "tail" in DEFAULTS.experts_shown
    attentionOpacity: Annotated[float, WithinRange(*OPACITY_RANGE)] = DEFAULTS.attention_opacity


class DCASegmentationWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Turns GUI state into a background segmentation run and its results into the views."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._run: SegmentRun | None = None
        self._deviceQuery: DeviceQuery | None = None
        self._overlayDisplay = OverlayDisplay()

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/DCASegmentation.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = DCASegmentationLogic()
        self.timer = qt.QTimer()
        self.timer.setInterval(POLL_INTERVAL_MS)
        self.timer.connect("timeout()", self.onPoll)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.segmentButton.connect("clicked(bool)", self.onSegmentButton)
        self.ui.importModelButton.connect("clicked(bool)", self.onImportModel)
        self.ui.detectDevicesButton.connect("clicked(bool)", self.onDetectDevices)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelChanged)
        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self.onDeviceChanged)

        self.initializeParameterNode()
        self.setDeviceChoices([(DEFAULTS.device, _("Automatic"))], keepRemembered=True)
        self.refreshModels()

    def cleanup(self) -> None:
        if self._run is not None and self._run.running:
            self._run.cancel()
        self.timer.stop()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)

    def onReload(self) -> None:
        """Re-read the Lib packages and the engine too, not only this file (for developers)."""
        forget_modules()
        ScriptedLoadableModuleWidget.onReload(self)

    def onSceneStartClose(self, caller, event) -> None:
        if self._run is not None and self._run.running:
            self._run.cancel()
        self._overlayDisplay.forget()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    # ------------------------------------------------------------------ parameters

    def initializeParameterNode(self) -> None:
        fresh = self._parameterNode is None
        self.setParameterNode(self.logic.getParameterNode())
        if fresh:
            self.logic.restoreChoices(self._parameterNode)
        if not self._parameterNode.inputVolume:
            first = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if first:
                self._parameterNode.inputVolume = first

    def setParameterNode(self, parameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
            self.onParameterNodeModified()

    def onParameterNodeModified(self, caller=None, event=None) -> None:
        self.updateButtonState()
        self.updateOverlays()

    def updateButtonState(self) -> None:
        running = self._run is not None and self._run.running
        self.ui.segmentButton.text = _("Cancel") if running else _("Segment organs")
        ready = bool(self._parameterNode and self._parameterNode.inputVolume and self._parameterNode.modelKey)
        self.ui.segmentButton.enabled = running or ready
        self.ui.importModelButton.enabled = not running
        segmentation = self._parameterNode.outputSegmentation if self._parameterNode else None
        self.ui.show3DButton.setSegmentationNode(segmentation)

    # ------------------------------------------------------------------ models and devices

    def refreshModels(self, select: str = "") -> None:
        entries = self.logic.registry.list_models()
        wanted = select or (self._parameterNode.modelKey if self._parameterNode else "")
        combo = self.ui.modelComboBox
        combo.blockSignals(True)
        combo.clear()
        for entry in entries:
            combo.addItem(entry.title, entry.key)
            combo.setItemData(combo.count - 1, entry.describe(), qt.Qt.ToolTipRole)
        index = combo.findData(wanted)
        combo.currentIndex = index if index >= 0 else (0 if entries else -1)
        combo.blockSignals(False)
        if not entries:
            self.ui.modelInfoLabel.text = _("No model yet: import one (.zip or folder with model.json).")
        self.onModelChanged(combo.currentIndex)

    def onModelChanged(self, index: int) -> None:
        key = self.ui.modelComboBox.itemData(index) if index >= 0 else ""
        entry = self.logic.registry.find(key) if key else None
        if entry is not None:
            self.ui.modelInfoLabel.text = entry.problem or entry.describe().splitlines()[0]
        if self._parameterNode:
            self._parameterNode.modelKey = key or ""

    def onImportModel(self) -> None:
        path = qt.QFileDialog.getOpenFileName(slicer.util.mainWindow(), _("Import a DCA model package"), "",
                                              _("DCA model package (*.zip model.json)"))
        if not path:
            return
        source = Path(path).parent if Path(path).name == "model.json" else Path(path)
        if not self.ensureDependencies():
            return
        with slicer.util.tryWithErrorDisplay(_("Could not import the model."), waitCursor=True):
            entry = self.logic.registry.import_model(source)
            self.refreshModels(select=entry.key)
            self.ui.statusLabel.text = _("Imported model '{name}'.").format(name=entry.title)

    def setDeviceChoices(self, choices, keepRemembered: bool = False) -> None:
        combo = self.ui.deviceComboBox
        combo.blockSignals(True)
        combo.clear()
        for name, label in choices:
            combo.addItem(label, name)
        wanted = self._parameterNode.device if self._parameterNode else DEFAULTS.device
        if keepRemembered and combo.findData(wanted) < 0:  # from an earlier session, not detected yet
            combo.addItem(wanted, wanted)
        combo.currentIndex = max(combo.findData(wanted), 0)
        combo.blockSignals(False)
        self.onDeviceChanged(combo.currentIndex)

    def onDeviceChanged(self, index: int) -> None:
        if self._parameterNode and index >= 0:
            self._parameterNode.device = self.ui.deviceComboBox.itemData(index)

    def onDetectDevices(self) -> None:
        if not self.ensureDependencies():
            return
        self.ui.deviceInfoLabel.text = _("Asking the engine...")
        self._deviceQuery = DeviceQuery()
        self._deviceQuery.start()
        self.timer.start()

    # ------------------------------------------------------------------ running

    def ensureDependencies(self) -> bool:
        missing = dependencies.missing_packages()
        if not missing:
            return True
        if not slicer.util.confirmOkCancelDisplay(dependencies.consent_text(missing)):
            return False
        with slicer.util.tryWithErrorDisplay(_("Installing the engine's packages failed."), waitCursor=True):
            dependencies.install(missing)
        return True

    def onSegmentButton(self) -> None:
        if self._run is not None and self._run.running:
            self._run.cancel()
            self.ui.statusLabel.text = _("Cancelling...")
            return
        if not self.ensureDependencies():
            return
        with slicer.util.tryWithErrorDisplay(_("Could not start the segmentation."), waitCursor=True):
            self.ui.logTextEdit.clear()
            self.ui.progressBar.value = 0
            self._run = self.logic.startSegmentation(self._parameterNode, on_progress=self.onProgress,
                                                     on_log=self.ui.logTextEdit.appendPlainText,
                                                     on_finish=self.onFinished)
            self.logic.saveChoices(self._parameterNode)
            self.timer.start()
        self.updateButtonState()

    def onPoll(self) -> None:
        busy = False
        if self._run is not None:
            busy = self._run.poll() or busy
        if self._deviceQuery is not None:
            if self._deviceQuery.done:
                info = self._deviceQuery.info
                self.ui.deviceInfoLabel.text = info.summary()
                self.setDeviceChoices(info.choices())
                self._deviceQuery = None
            else:
                busy = True
        if not busy:
            self.timer.stop()
        self.updateButtonState()

    def onProgress(self, fraction, text: str) -> None:
        if fraction is not None:
            self.ui.progressBar.value = int(round(100 * fraction))
        self.ui.statusLabel.text = text

    def onFinished(self, outcome: SegmentOutcome) -> None:
        for warning in outcome.warnings:
            self.ui.logTextEdit.appendPlainText(_("warning: {message}").format(message=warning))
        if outcome.status == "done":
            self._overlayDisplay.set_run(outcome.overlays, self._parameterNode.inputVolume)
            self._parameterNode.outputSegmentation = outcome.segmentation
            self.updateOverlays()
            self.ui.statusLabel.text = _("Done: {count} organs found.").format(
                count=outcome.segmentation.GetSegmentation().GetNumberOfSegments())
        elif outcome.status == "cancelled":
            self.ui.progressBar.value = 0
            self.ui.statusLabel.text = _("Cancelled; nothing was added to the scene.")
        else:
            self.ui.statusLabel.text = outcome.error
            slicer.util.errorDisplay(_("Segmentation failed: {reason}").format(reason=outcome.error))
        self.updateButtonState()

    def updateOverlays(self) -> None:
        if self._parameterNode is None:
            return
        parameters = self._parameterNode
        experts = [g for g, on in (("head", parameters.showHead), ("medium", parameters.showMedium),
                                   ("tail", parameters.showTail)) if on]
        self._overlayDisplay.update(parameters.inputVolume, experts, parameters.attentionOpacity)


class DCASegmentationLogic(ScriptedLoadableModuleLogic):
    """Facade over ``DCASegmentationLib`` for the widget, the test and Python scripting."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        moduleDir = Path(__file__).resolve().parent
        userModels = Path(slicer.app.slicerUserSettingsFilePath).parent / "DCASegmentation" / "models"
        self.registry = ModelRegistry(userModels, (moduleDir / "Resources" / "Models",))

    def getParameterNode(self):
        return DCASegmentationParameterNode(super().getParameterNode())

    def restoreChoices(self, parameterNode) -> None:
        """Fill the parameter node with what the user chose in an earlier session."""
        settings = qt.QSettings()
        stored = {key: settings.value(key) for key in SegmentChoices().to_settings()}
        choices = SegmentChoices.from_settings({k: v for k, v in stored.items() if v is not None})
        parameterNode.modelKey = choices.model
        parameterNode.device = choices.device
        parameterNode.overlap = choices.overlap
        parameterNode.computeAttention = choices.show_attention
        parameterNode.showHead = "head" in choices.experts_shown
        parameterNode.showMedium = "medium" in choices.experts_shown
        parameterNode.showTail = "tail" in choices.experts_shown
        parameterNode.attentionOpacity = choices.attention_opacity

    def saveChoices(self, parameterNode) -> None:
        """Remember the current choices for the next session."""
        shown = tuple(g for g, on in (("head", parameterNode.showHead), ("medium", parameterNode.showMedium),
                                      ("tail", parameterNode.showTail)) if on)
        choices = SegmentChoices(model=parameterNode.modelKey, device=parameterNode.device,
                                 overlap=parameterNode.overlap, show_attention=parameterNode.computeAttention,
                                 experts_shown=shown, attention_opacity=parameterNode.attentionOpacity)
        settings = qt.QSettings()
        for key, value in choices.to_settings().items():
            settings.setValue(key, value)

    def startSegmentation(self, parameterNode, on_progress=None, on_log=None, on_finish=None,
                          python: str | None = None) -> SegmentRun:
        """Start segmenting ``parameterNode.inputVolume`` in the background; poll the returned run."""
        if not parameterNode.inputVolume:
            raise ValueError(_("Select an input volume."))
        entry = self.registry.find(parameterNode.modelKey)
        if entry is None or entry.meta is None:
            raise ValueError(entry.problem if entry else _("Select or import a model."))
        request = SegmentRequest(input_volume=parameterNode.inputVolume, model_path=entry.path,
                                 classes=entry.meta.classes, device=parameterNode.device,
                                 overlap=parameterNode.overlap, output_segmentation=parameterNode.outputSegmentation,
                                 attention=parameterNode.computeAttention)
        run = SegmentRun(request, on_progress=on_progress, on_log=on_log, on_finish=on_finish, python=python)
        run.start()
        return run


class DCASegmentationTest(ScriptedLoadableModuleTest):
    """Segments a small CT-like volume end to end (bundled demo model, else a small random-weight one)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SegmentWithBundledModel()

    def test_SegmentWithBundledModel(self):
        import numpy as np

        missing = dependencies.missing_packages()
        if missing:
            self.delayDisplay("Installing the engine's Python packages")
            dependencies.install(missing)
        logic = DCASegmentationLogic()
        models = [entry for entry in logic.registry.list_models() if entry.bundled and entry.meta]
        if not models:
            self.delayDisplay("No bundled model: using a small random-weight one")
            folder = self.makeSmallModel().parent
            logic.registry = ModelRegistry(logic.registry.user_dir, (*logic.registry.bundled_dirs, folder))
            models = [entry for entry in logic.registry.list_models() if entry.bundled and entry.meta]
        self.delayDisplay("Making a small CT-like volume")
        shape = (24, 48, 48)
        zz, yy, xx = np.mgrid[:shape[0], :shape[1], :shape[2]]
        body = ((yy - 24) ** 2 + (xx - 24) ** 2 < 20 ** 2) * 1000.0 - 1000.0
        organ = ((yy - 20) ** 2 + (xx - 28) ** 2 + (zz - 12) ** 2 < 8 ** 2) * 60.0
        volume = slicer.util.addVolumeFromArray((body + organ).astype(np.int16), name="small CT")
        volume.SetSpacing(3.0, 3.0, 3.0)

        parameterNode = logic.getParameterNode()
        parameterNode.inputVolume = volume
        parameterNode.modelKey = models[0].key
        parameterNode.device = "cpu"
        parameterNode.computeAttention = True
        outcomes = []
        run = logic.startSegmentation(parameterNode, on_finish=outcomes.append)
        self.delayDisplay("Segmenting in the background")
        while run.poll():
            slicer.app.processEvents()
            qt.QThread.msleep(50)
        self.assertEqual(len(outcomes), 1)
        outcome = outcomes[0]
        self.assertEqual(outcome.status, "done", outcome.error)
        classNames = {c.name for c in models[0].meta.classes}
        segmentation = outcome.segmentation.GetSegmentation()
        for index in range(segmentation.GetNumberOfSegments()):
            self.assertIn(segmentation.GetNthSegment(index).GetName(), classNames)
        self.assertEqual(sorted(outcome.overlays.volumes), ["head", "medium", "tail"])
        shown = show_overlays(outcome.overlays, ["medium"], 0.5, background=volume)
        composite = slicer.app.layoutManager().sliceWidget("Red").sliceLogic().GetSliceCompositeNode()
        self.assertEqual(composite.GetForegroundVolumeID(), shown.GetID())
        self.delayDisplay("Test passed")

    @staticmethod
    def makeSmallModel() -> Path:
        """A real (random-weight) 3-organ package, n_filters 4, saved in Slicer's temporary folder."""
        from dcaseg.anatomy import organ_color, organ_snomed
        from dcaseg.nets import ArchitectureConfig, DCANet
        from dcaseg.package import ClassInfo, ModelMeta, Preprocessing, expert_classes_from_groups, save_package

        names = {1: "liver", 2: "kidney_right", 3: "adrenal_gland_right"}
        classes = [ClassInfo(v, n, organ_color(n, v), organ_snomed(n)) for v, n in names.items()]
        groups = {"head": [1], "medium": [2], "tail": [3]}
        architecture = ArchitectureConfig(len(classes) + 1, expert_classes_from_groups(groups, classes), n_filters=4)
        meta = ModelMeta("DCA self-test model", architecture, classes, groups,
                         Preprocessing((3.0, 3.0, 3.0), (32, 32, 32)), description="random weights, for the self-test")
        folder = Path(slicer.app.temporaryPath) / "DCASegmentationSelfTest"
        return save_package(folder / "self-test-model", DCANet(architecture), meta)

"""DCA Training: train from a local folder, watch it live, correct masks, retrain, pick the next case.

A thin shell: the work lives in the Qt-free ``DCATrainingLib`` and in the ``dcaseg`` engine, which
trains and ranks in background processes (``PythonSlicer -m dcaseg train|rank``). The engine's
packages (torch, nibabel, ...) may be missing until the user agrees to install them, so the Lib is
imported only once they are there.
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
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
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
from DCASegmentationLib.module_reload import forget_modules  # noqa: E402

POLL_INTERVAL_MS = 500
SETTINGS_PREFIX = "DCATraining/"
REMEMBERED = ("datasetFolder", "runFolder", "preset", "iterations", "unlabeledWeight", "device", "rankingScore")
PRESET_WEIGHT = -1.0  # the unlabeled-weight spin box at its minimum shows "preset default"


class DCATraining(ScriptedLoadableModule):
    """Module metadata."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("DCA Training")
        self.parent.categories = [_("Segmentation")]
        self.parent.dependencies = ["DCASegmentation"]
        self.parent.contributors = ["DCA Segmentation contributors"]
        self.parent.helpText = _(
            "Train a DCA model on a folder of partly annotated CT scans, watch the losses and the validation "
            "Dice live, save corrected segmentations back into the folder (earlier labels are kept), retrain "
            "from the current model, and see which unlabeled case the model is least sure about.")
        self.parent.acknowledgementText = _("Method: DCA (CVPR 2026).")


@parameterNodeWrapper
class DCATrainingParameterNode:
    """GUI state of the module (bound to the .ui widgets through ``SlicerParameterName``)."""

    datasetFolder: Path
    runFolder: Path
    preset: Annotated[str, Choice(["cpu-demo", "paper", "tiny"])] = "cpu-demo"
    iterations: Annotated[int, WithinRange(0, 1000000)] = 0
    unlabeledWeight: Annotated[float, WithinRange(PRESET_WEIGHT, 100.0)] = PRESET_WEIGHT
    device: Annotated[str, Choice(["auto", "cpu", "cuda", "mps"])] = "auto"
    correctionVolume: slicer.vtkMRMLScalarVolumeNode
    correctionSegmentation: slicer.vtkMRMLSegmentationNode
    caseId: str = ""
    addToValidation: bool = False
    rankingScore: Annotated[str, Choice(["disagreement", "entropy"])] = "disagreement"


class DCATrainingWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Turns button clicks into logic calls and the logic's state into the GUI."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/DCATraining.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = DCATrainingLogic()
        self.timer = qt.QTimer()
        self.timer.setInterval(POLL_INTERVAL_MS)
        self.timer.connect("timeout()", self.onPoll)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        for button, slot in ((self.ui.scanButton, self.onScan), (self.ui.groupingButton, self.onGrouping),
                             (self.ui.startButton, self.onStart), (self.ui.stopButton, self.onStop),
                             (self.ui.resumeButton, self.onResume), (self.ui.showPlotsButton, self.onShowPlots),
                             (self.ui.useModelButton, self.onUseModel),
                             (self.ui.saveCorrectionButton, self.onSaveCorrection),
                             (self.ui.retrainButton, self.onRetrain), (self.ui.rankButton, self.onRank),
                             (self.ui.openTopCaseButton, self.onOpenTopCase)):
            button.connect("clicked(bool)", slot)
        self.initializeParameterNode()
        self.updateButtonState()

    def cleanup(self) -> None:
        self.timer.stop()
        self.logic.stopAll()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self.logic.saveChoices(self._parameterNode)
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtonState)

    def onReload(self) -> None:
        """Re-read the Lib packages and the engine too, not only this file (for developers)."""
        forget_modules()
        ScriptedLoadableModuleWidget.onReload(self)

    def onSceneStartClose(self, caller, event) -> None:
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

    def setParameterNode(self, parameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtonState)
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtonState)

    def updateButtonState(self, caller=None, event=None) -> None:
        state = self.logic.trainingState()
        busy = state in ("running", "stopping")
        parameters = self._parameterNode
        folders = bool(parameters and str(parameters.datasetFolder) not in ("", ".")
                       and str(parameters.runFolder) not in ("", "."))
        self.ui.groupingButton.enabled = self.logic.scan is not None
        self.ui.startButton.enabled = folders and not busy
        self.ui.resumeButton.enabled = folders and not busy
        self.ui.stopButton.enabled = state == "running"
        self.ui.showPlotsButton.enabled = self.logic.process is not None
        self.ui.useModelButton.enabled = not busy and self.logic.modelPath() is not None
        self.ui.saveCorrectionButton.enabled = bool(parameters and parameters.correctionVolume
                                                    and parameters.correctionSegmentation
                                                    and str(parameters.datasetFolder) not in ("", "."))
        self.ui.retrainButton.enabled = not busy and self.logic.modelPath() is not None
        ranking = self.logic.ranking is not None and self.logic.ranking.engine.running
        self.ui.rankButton.enabled = not ranking and self.logic.modelPath() is not None
        self.ui.openTopCaseButton.enabled = bool(self.logic.ranking and self.logic.ranking.ranking)

    def report(self, text: str) -> None:
        self.ui.messageLabel.text = text

    def ready(self) -> bool:
        """Offer to install the engine's packages when missing; True once they are there."""
        missing = dependencies.missing_packages()
        if not missing:
            return True
        if not slicer.util.confirmOkCancelDisplay(dependencies.consent_text(missing)):
            return False
        with slicer.util.tryWithErrorDisplay(_("Installing the engine's packages failed."), waitCursor=True):
            dependencies.install(missing)
        return True

    # ------------------------------------------------------------------ dataset

    def onScan(self) -> None:
        if not self.ready():
            return
        with slicer.util.tryWithErrorDisplay(_("Scanning the dataset folder failed."), waitCursor=True):
            table, summary, folderProblems = self.logic.scanDataset(self._parameterNode.datasetFolder)
            self.ui.datasetTableView.setMRMLTableNode(table)
            self.ui.datasetSummaryLabel.text = summary
            self.ui.datasetSummaryLabel.toolTip = "\n".join(folderProblems)
        self.updateButtonState()

    def onGrouping(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("The grouping preview failed."), waitCursor=True):
            chart = self.logic.showGrouping()
            slicer.modules.plots.logic().ShowChartInLayout(chart)

    # ------------------------------------------------------------------ training

    def onStart(self) -> None:
        self.startTraining(lambda: self.logic.startTraining(self._parameterNode))

    def onResume(self) -> None:
        self.startTraining(lambda: self.logic.resumeTraining(self._parameterNode))

    def onRetrain(self) -> None:
        self.startTraining(lambda: self.logic.retrain(self._parameterNode))

    def startTraining(self, start) -> None:
        if not self.ready():
            return
        with slicer.util.tryWithErrorDisplay(_("Training could not start."), waitCursor=True):
            self.logic.saveChoices(self._parameterNode)
            process = start()
            self._parameterNode.runFolder = process.request.run
            slicer.modules.plots.logic().ShowChartInLayout(process.monitor.loss_chart)
            self.timer.start()
        self.updateButtonState()

    def onStop(self) -> None:
        self.logic.stopTraining()
        self.updateButtonState()

    def onShowPlots(self) -> None:
        monitor = self.logic.process.monitor
        chart = monitor.dice_chart if self.ui.showPlotsButton.text == _("Show Dice") else monitor.loss_chart
        slicer.modules.plots.logic().ShowChartInLayout(chart)
        self.ui.showPlotsButton.text = _("Show losses") if chart is monitor.dice_chart else _("Show Dice")

    def onPoll(self) -> None:
        active = self.logic.poll()
        process = self.logic.process
        if process is not None:
            monitor = process.monitor
            self.ui.trainingProgressBar.value = int(round(100 * monitor.progress))
            self.ui.trainingStatusLabel.text = self.logic.trainingStatus()
        if not active:
            self.timer.stop()
        self.updateButtonState()

    def onUseModel(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("The model could not be registered."), waitCursor=True):
            entry = self.logic.useModel()
            self.report(_("Model {name} is now offered in DCA Segmentation.").format(name=entry.key))
            segmentationWidget = slicer.modules.dcasegmentation.widgetRepresentation().self()
            segmentationWidget.refreshModels(select=entry.key)

    # ------------------------------------------------------------------ correct, rank

    def onSaveCorrection(self) -> None:
        if not self.ready():
            return
        with slicer.util.tryWithErrorDisplay(_("The correction was not saved."), waitCursor=True):
            saved = self.logic.saveCorrection(self._parameterNode)
            kept = _(" (earlier label kept in {path})").format(path=saved.previous_label) \
                if saved.previous_label else ""
            self.report(_("Saved {label}{kept}.").format(label=saved.label_path, kept=kept))

    def onRank(self) -> None:
        if not self.ready():
            return
        with slicer.util.tryWithErrorDisplay(_("Ranking could not start."), waitCursor=True):
            self.logic.startRanking(self._parameterNode, on_finish=self.onRankingFinished)
            self.report(_("Ranking the unlabeled cases..."))
            self.timer.start()
        self.updateButtonState()

    def onRankingFinished(self, result) -> None:
        if result.status == "done":
            self.ui.rankingTableView.setMRMLTableNode(self.logic.showRanking())
            self.report(_("Most uncertain: {case}").format(case=self.logic.ranking.ranking[0].case_id)
                        if self.logic.ranking.ranking else _("No unlabeled case to rank."))
        elif result.status == "failed":
            self.report(result.error)
        self.updateButtonState()

    def onOpenTopCase(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("The case could not be opened."), waitCursor=True):
            volume = self.logic.openTopCase()
            slicer.util.setSliceViewerLayers(background=volume, fit=True)
            self._parameterNode.correctionVolume = volume


class DCATrainingLogic(ScriptedLoadableModuleLogic):
    """Facade over ``DCATrainingLib`` for the widget, the test and Python scripting."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.scan = None
        self.process = None
        self.ranking = None
        self.tableNode = None
        self.rankingTableNode = None

    def getParameterNode(self):
        return DCATrainingParameterNode(super().getParameterNode())

    def restoreChoices(self, parameterNode) -> None:
        """Fill the parameter node with the folders and settings of an earlier session."""
        settings = qt.QSettings()
        for name in REMEMBERED:
            value = settings.value(SETTINGS_PREFIX + name)
            if value not in (None, ""):
                current = getattr(parameterNode, name)
                setattr(parameterNode, name, type(current)(value))

    def saveChoices(self, parameterNode) -> None:
        settings = qt.QSettings()
        for name in REMEMBERED:
            settings.setValue(SETTINGS_PREFIX + name, str(getattr(parameterNode, name)))

    # ------------------------------------------------------------------ dataset

    def scanDataset(self, folder):
        """Scan ``folder``; returns (case table node, summary line, problems that belong to no case)."""
        from DCATrainingLib.dataset_table import folder_problems, scan_folder, show_dataset, summary

        self.scan = scan_folder(folder)
        self.tableNode = show_dataset(slicer.mrmlScene, self.scan, self.tableNode)
        return self.tableNode, summary(self.scan), folder_problems(self.scan)

    def showGrouping(self):
        """The log-gap grouping chart of the scanned folder's labeled cases."""
        from DCATrainingLib.grouping_chart import grouping_of_labels, show_grouping

        grouping = grouping_of_labels([case.label for case in self.scan.labeled_cases], self.scan.classes)
        return show_grouping(slicer.mrmlScene, grouping, self.scan.classes).chart

    # ------------------------------------------------------------------ training

    def request(self, parameterNode):
        from DCATrainingLib.training_process import TrainingRequest

        weight = parameterNode.unlabeledWeight
        return TrainingRequest(data=Path(parameterNode.datasetFolder), run=Path(parameterNode.runFolder),
                               preset=parameterNode.preset, iterations=parameterNode.iterations or None,
                               unlabeled_weight=weight if weight >= 0 else None, device=parameterNode.device)

    def startTraining(self, parameterNode, resume: bool = False):
        """Start (or resume) ``dcaseg train`` in the background; returns the ``TrainingProcess``."""
        from DCATrainingLib.training_process import TrainingProcess

        return self._launch(TrainingProcess(slicer.mrmlScene, self.request(parameterNode), resume=resume))

    def resumeTraining(self, parameterNode):
        return self.startTraining(parameterNode, resume=True)

    def retrain(self, parameterNode):
        """Fine-tune the current model into a new run folder (same split, so the same validation cases)."""
        from DCATrainingLib.training_process import TrainingProcess, prepare_retrain

        request = prepare_retrain(self.request(parameterNode), self.modelPath())
        return self._launch(TrainingProcess(slicer.mrmlScene, request))

    def _launch(self, process):
        if self.process is not None and self.process.running:
            raise RuntimeError(_("A training run is still going; stop it first."))
        process.start()
        self.process = process
        return process

    def stopTraining(self) -> None:
        if self.process is not None:
            self.process.stop()

    def stopAll(self) -> None:
        """Stop training (resumable) and cancel ranking, e.g. when the module is closed."""
        self.stopTraining()
        if self.ranking is not None:
            self.ranking.cancel()

    def poll(self) -> bool:
        """Advance the background processes; True while any still runs."""
        training = self.process.poll() if self.process is not None else False
        ranking = self.ranking.poll() if self.ranking is not None else False
        return training or ranking

    def trainingState(self) -> str:
        return self.process.state if self.process is not None else "idle"

    def trainingStatus(self) -> str:
        """One line for the status label: state, iteration, last validation, error."""
        monitor = self.process.monitor
        parts = [self.process.state, _("iteration {done}/{total}").format(done=monitor.iteration,
                                                                          total=monitor.total_iterations or "?")]
        if monitor.validations:
            parts.append(_("mean Dice {dice:.3f}").format(dice=monitor.validations[-1]["mean"]))
        if self.process.error:
            parts.append(self.process.error)
        return " · ".join(parts)

    def modelPath(self):
        """The current run's best model package, or None before the first validation."""
        return self.process.model_path if self.process is not None else None

    def useModel(self):
        """Register the current model with DCA Segmentation's model registry; returns its entry."""
        from DCASegmentation import DCASegmentationLogic
        from DCATrainingLib.model_handoff import use_model

        return use_model(DCASegmentationLogic().registry, self.modelPath())

    # ------------------------------------------------------------------ correct, rank

    def saveCorrection(self, parameterNode):
        """Write the edited segmentation into the dataset and record the case in the run's split."""
        from DCATrainingLib.corrections import save_correction

        run = Path(parameterNode.runFolder)
        return save_correction(parameterNode.correctionSegmentation, parameterNode.correctionVolume,
                               Path(parameterNode.datasetFolder), parameterNode.caseId or None,
                               run_dir=run if (run / "split.json").is_file() else None,
                               role="validation" if parameterNode.addToValidation else "labeled")

    def startRanking(self, parameterNode, on_finish=None):
        from DCATrainingLib.next_case import NextCaseRanking

        self.ranking = NextCaseRanking(self.modelPath(), Path(parameterNode.datasetFolder),
                                       parameterNode.rankingScore, parameterNode.device, on_finish=on_finish)
        self.ranking.start()
        return self.ranking

    def showRanking(self):
        from DCATrainingLib.next_case import show_ranking

        self.rankingTableNode = show_ranking(slicer.mrmlScene, self.ranking.ranking, self.rankingTableNode)
        return self.rankingTableNode

    def openTopCase(self):
        from DCATrainingLib.next_case import open_case

        return open_case(slicer.modules.volumes.logic(), self.ranking.ranking[0])


class DCATrainingTest(ScriptedLoadableModuleTest):
    """Scans a small synthetic dataset and saves an edited segmentation as a new label (no training)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_ScanAndSaveCorrection()

    def test_ScanAndSaveCorrection(self):
        import json
        import tempfile

        import numpy as np

        missing = dependencies.missing_packages()
        if missing:
            self.delayDisplay("Installing the engine's Python packages")
            dependencies.install(missing)
        from dcaseg.data.phantom import make_phantom

        folder = Path(tempfile.mkdtemp(prefix="dca-training-test-", dir=slicer.app.temporaryPath))
        make_phantom(folder / "data", cases=3, labeled=2, seed=0, size=(48, 48, 32))
        run = folder / "run"
        run.mkdir()
        (run / "split.json").write_text(json.dumps({"labeled": ["phantom_001"], "unlabeled": ["phantom_002"],
                                                    "validation": ["phantom_000"]}))
        logic = DCATrainingLogic()
        self.delayDisplay("Scanning the dataset")
        _table, summary, _problems = logic.scanDataset(folder / "data")
        self.assertTrue(summary.startswith("3 cases: 2 labeled, 1 unlabeled"), summary)
        self.assertEqual(logic.showGrouping().GetNumberOfPlotSeriesNodes(), 3)

        self.delayDisplay("Segmenting phantom_002 by hand and saving it")
        volume = slicer.util.loadVolume(str(folder / "data" / "images" / "phantom_002.nii.gz"))
        segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        segmentation.CreateDefaultDisplayNodes()
        segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
        liver = segmentation.GetSegmentation().AddEmptySegment("", "liver")
        mask = np.zeros(slicer.util.arrayFromVolume(volume).shape, np.uint8)
        mask[10:20, 10:30, 5:25] = 1
        slicer.util.updateSegmentBinaryLabelmapFromArray(mask, segmentation, liver, volume)
        parameterNode = logic.getParameterNode()
        parameterNode.datasetFolder = folder / "data"
        parameterNode.runFolder = run
        parameterNode.correctionVolume = volume
        parameterNode.correctionSegmentation = segmentation
        saved = logic.saveCorrection(parameterNode)
        self.assertEqual(saved.case_id, "phantom_002")
        written = slicer.util.loadLabelVolume(str(saved.label_path))
        self.assertTrue(np.array_equal(slicer.util.arrayFromVolume(written), mask * 6))
        split = json.loads((run / "split.json").read_text(encoding="utf-8"))
        self.assertEqual(split["labeled"], ["phantom_001", "phantom_002"])
        self.delayDisplay("Test passed")

"""Next case to annotate in Slicer: ``dcaseg rank`` in the background, the ranking table, open the top case."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from dcaseg.data.phantom import make_phantom

slicer = pytest.importorskip("slicer")


def test_rank_in_background_then_open_the_most_uncertain_case(mrml, tiny_model, tmp_path):
    from DCATrainingLib.next_case import NextCaseRanking, open_case, show_ranking
    from DCATrainingLib.plot_nodes import column_values

    data = tmp_path / "data"
    make_phantom(data, cases=2, labeled=1, seed=4, size=(48, 48, 32))
    clean = sitk.ReadImage(str(data / "images" / "phantom_001.nii.gz"))
    voxels = sitk.GetArrayFromImage(clean).astype(np.float32)
    noise = sitk.GetImageFromArray(np.random.default_rng(1).normal(voxels.mean(), voxels.std(), voxels.shape)
                                   .astype(np.int16))
    noise.CopyInformation(clean)
    sitk.WriteImage(noise, str(data / "images" / "scrambled.nii.gz"))

    progress, finished = [], []
    ranking = NextCaseRanking(tiny_model, data, device="cpu", on_finish=finished.append, on_progress=progress.append)
    ranking.start()
    result = ranking.wait(timeout=900)  # a hang guard, not a speed check
    assert result is not None and result.status == "done", result
    assert finished == [result] and progress == [0.5, 1.0]
    assert not ranking.folder.exists()  # the temporary ranking folder is cleaned up

    table = show_ranking(mrml.scene, ranking.ranking)
    assert column_values(table, "case") == ["scrambled", "phantom_001"]
    assert column_values(table, "rank") == [1.0, 2.0]
    volume = open_case(mrml.volumes, ranking.ranking[0])
    assert volume.GetName() == "scrambled"
    assert np.array_equal(slicer.util.arrayFromVolume(volume), sitk.GetArrayFromImage(noise))

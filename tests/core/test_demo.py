"""The demo (shortened) with the shipped checkpoints: runs, writes its files, beats the raw input."""
import json

import pytest

from dreamor.refine.api import models_dir


@pytest.mark.skipif(not (models_dir() / "vae-small.pt").exists(), reason="no shipped checkpoints")
def test_quick_demo(tmp_path, capsys):
    from dreamor.cli import main

    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "metrics.json" in out
    for name in ("clean.npz", "observed.npz", "refined.npz", "refined_smpl22.bvh", "metrics.json"):
        assert (tmp_path / name).exists()
    m = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("occ_cm", "vis_cm", "skate_cm", "pen_freq"):
        assert m["input"][key] is not None and m["refined"][key] is not None
    # the hidden legs, held at their last seen pose by the raw input, come out closer to the truth
    assert m["refined"]["occ_cm"] < m["input"]["occ_cm"]

"""Whole files or none (dreamor.files) and the one checkpoint format (dreamor.models.checkpoint)."""
import os
import stat

import pytest
import torch

from dreamor.errors import DreamorError
from dreamor.errors import OutputFileError
from dreamor.files import atomic_write, check_writable
from dreamor.models.checkpoint import load_checkpoint, save_checkpoint
from dreamor.models.diffusion import load_diffusion
from dreamor.models.infill import InfillConfig, JointInfill, load_infill, save_infill


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out" / "a.txt"
    with atomic_write(path, "w") as fh:
        fh.write("old")
    with pytest.raises(RuntimeError):
        with atomic_write(path, "w") as fh:
            fh.write("half")
            raise RuntimeError("interrupted")
    assert path.read_text() == "old" and sorted(p.name for p in path.parent.iterdir()) == ["a.txt"]


def test_an_output_that_cannot_be_written_is_a_user_error(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    check_writable(tmp_path / "new" / "deeper" / "a.npz")  # folders to be made: fine
    check_writable(tmp_path / "dir", folder=True)
    check_writable(tmp_path / "new", folder=True)
    for path, folder, msg in ((tmp_path / "file" / "a.npz", False, "is a file, not a folder"),
                              (tmp_path / "file" / "x" / "a.npz", False, "is a file, not a folder"),
                              (tmp_path / "dir", False, "is a folder"),
                              (tmp_path / "file", True, "is a file")):
        with pytest.raises(OutputFileError, match=msg):
            check_writable(path, folder)
    with pytest.raises(OutputFileError):
        with atomic_write(tmp_path / "file" / "a.npz") as fh:
            fh.write(b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "file"]  # nothing left behind


def test_file_modes(tmp_path):
    with atomic_write(tmp_path / "key.json", "w", private=True) as fh:
        fh.write("{}")
    with atomic_write(tmp_path / "clip.npz") as fh:
        fh.write(b"x")
    assert stat.S_IMODE(os.stat(tmp_path / "key.json").st_mode) == 0o600
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(os.stat(tmp_path / "clip.npz").st_mode) == 0o666 & ~mask  # not the temporary's 0600


def test_checkpoint_round_trip_and_clear_errors(tmp_path):
    model = JointInfill(InfillConfig(channels=16, dilations=(1, 2)))
    path = save_infill(tmp_path / "infill.pt", model, step=4, metrics={"val": 1.0})
    loaded = load_infill(path)
    assert loaded.step == 4 and loaded.config == model.config
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    with pytest.raises(DreamorError, match="not a DREAMoR latent diffusion checkpoint"):
        load_diffusion(path)  # another model's file
    with pytest.raises(DreamorError, match="no such DREAMoR latent diffusion checkpoint.*dreamor train diffusion"):
        load_diffusion(tmp_path / "missing.pt")
    save_checkpoint(tmp_path / "new.pt", "dreamor-joint-infill", 99, {}, {})
    with pytest.raises(DreamorError, match="version 99 is newer"):
        load_infill(tmp_path / "new.pt")


def test_checkpoints_that_name_their_format_kind_still_load(tmp_path):
    """Diffusion checkpoints written before the one format called it 'kind' (models/ holds one)."""
    torch.save({"kind": "dreamor-x", "version": 1, "config": {"a": 1}, "model": {}}, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt", "dreamor-x", 1, what="x", train="t")["config"] == {"a": 1}

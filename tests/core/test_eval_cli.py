"""`dreamor eval` end to end on real mocap: report files, bad input, reproducibility."""
import csv
import json
import shutil

import pytest

from dreamor.cli import main
from dreamor.data.clip import save_clip
from dreamor.data.convert import read_motion, with_joints_and_contacts

BANDAI = ["dataset-2_raise-up-both-hands_normal_028.bvh", "dataset-2_run_normal_001.bvh",
          "dataset-2_walk-turn-left_normal_001.bvh"]  # 49, 68, 102 frames at 30 Hz


@pytest.fixture
def takes(tmp_path, mocap_dir):
    folder = tmp_path / "takes"
    (folder / "sub").mkdir(parents=True)
    for name in BANDAI[:2]:
        shutil.copy(mocap_dir / name, folder / name)
    shutil.copy(mocap_dir / BANDAI[2], folder / "sub" / BANDAI[2])
    (folder / "README.txt").write_text("not a motion file: ignored")
    return folder


def _run(capsys, *args):
    code = main([str(a) for a in args])
    return code, capsys.readouterr()


def test_eval_writes_report_plots_and_skips_an_unreadable_file(takes, tmp_path, capsys):
    (takes / "broken.bvh").write_text("HIERARCHY\nROOT Hips\n{ garbage")
    out = tmp_path / "out"
    code, io = _run(capsys, "eval", takes, "--protocol", "lower_body", "--clip-frames", "60", "--out", out, "--quiet")
    assert code == 1  # some input was skipped (as `dreamor convert`)
    assert "skipped:" in io.err and "broken.bvh" in io.err
    rep = json.loads((out / "report.json").read_text())
    # 49 | 60 (+8 dropped) | 60 + 42 frames
    assert rep["protocol"] == "lower_body" and rep["clips"] == 4 and rep["device"] == "cpu"
    assert len(rep["skipped"]) == 1 and "broken.bvh" in rep["skipped"][0]
    assert set(rep["methods"]) == {"input", "interp"}
    for m in rep["methods"].values():
        assert {"vis_cm", "occ_cm", "all_cm", "legs_cm", "vtx_cm", "contact_acc", "accel_ms2", "pen_freq",
                "pen_dist_cm", "skate_cm", "seconds_per_clip"} <= set(m)
        assert m["vis_cm"] == 0.0 and 3.0 < m["occ_cm"] < 50.0 and m["vtx_cm"] is None
        assert 0.5 < m["contact_acc"] <= 1.0 and m["seconds_per_clip"] > 0
    assert rep["occluded_fraction"] == pytest.approx(8 / 22)
    md = (out / "report.md").read_text()
    assert "| input |" in md and "| *paper: DREAMoR* | 1.68 | 8.19 | 4.11 | 9.98 | 4.39 | 0.950 | 2.59 | 6.25% | 0.58 |" in md
    assert "The data differ" in md and "AMASS" in md
    for png in ("per_joint_error.png", "error_over_time.png", "contacts.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png in md
    with open(out / "per_clip.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8 and {r["clip"] for r in rows} >= {"dataset-2_walk-turn-left_normal_001@60"}


def test_a_folder_without_clips_is_a_clear_error(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("nothing here")
    code, io = _run(capsys, "eval", empty, "--out", tmp_path / "out")
    assert code == 2 and io.err.startswith("error: ") and "no .bvh, .bvh.gz or .npz files" in io.err
    assert not (tmp_path / "out").exists()
    (empty / "bad.npz").write_bytes(b"not a zip")
    code, io = _run(capsys, "eval", empty, "--out", tmp_path / "out", "--quiet")
    assert code == 2 and "none of the 1 motion file(s) could be read" in io.err


def test_learned_methods_are_refused_before_any_work(takes, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DREAMOR_MODELS_DIR", str(tmp_path / "no_models"))
    code, io = _run(capsys, "eval", takes, "--methods", "input,dreamor", "--out", tmp_path / "out")
    assert code == 2 and "method 'dreamor' is not available" in io.err
    assert not (tmp_path / "out").exists()


def test_noisy_npz_input_is_seeded_and_reproducible(tmp_path, mocap_dir, capsys):
    clip = with_joints_and_contacts(read_motion(mocap_dir / BANDAI[2]))
    npz = save_clip(clip, tmp_path / "walk.npz")
    reports = []
    for seed, name in ((0, "a"), (0, "b"), (1, "c")):
        code, _ = _run(capsys, "eval", npz, "--protocol", "noisy", "--seed", seed, "--max-clips", 1, "--no-plots",
                       "--quiet", "--out", tmp_path / name)
        assert code == 0
        reports.append(json.loads((tmp_path / name / "report.json").read_text()))
    a, b, c = (r["methods"]["input"] for r in reports)
    assert reports[0]["clips"] == 1 and reports[0]["settings"]["noise_cm"] == 4.0
    assert a["occ_cm"] is None and a["vis_cm"] == pytest.approx(6.38, rel=0.1)  # 4 cm sigma per axis
    assert {k: v for k, v in a.items() if k != "seconds_per_clip"} == {k: v for k, v in b.items() if k != "seconds_per_clip"}
    assert a["vis_cm"] != c["vis_cm"]
    assert a["accel_ms2"] > 10 * reports[0]["ground_truth"]["accel_ms2"]  # noise is jerky
    assert not (tmp_path / "a" / "contacts.png").exists()


def test_learned_methods_run_with_checkpoints(tmp_path, mocap_dir, capsys, monkeypatch, tiny_checkpoints):
    """vae_only, no_opt and dreamor through `dreamor eval`, with tiny (untrained) checkpoints."""
    from dreamor.evaluate import baselines

    monkeypatch.setenv("DREAMOR_MODELS_DIR", str(tiny_checkpoints))
    monkeypatch.setattr(baselines, "_MODELS", {})
    code, _ = _run(capsys, "eval", mocap_dir / BANDAI[2], "--methods", "input,vae_only,no_opt,dreamor", "--preset", "fast",
                   "--clip-frames", "45", "--max-clips", "1", "--no-plots", "--quiet", "--out", tmp_path / "out")
    assert code == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    for name in ("vae_only", "no_opt", "dreamor"):
        assert report["methods"][name]["occ_cm"] is not None and report["methods"][name]["seconds_per_clip"] > 0


def test_bench_times_methods_in_fresh_processes(tmp_path, monkeypatch, tiny_checkpoints, capsys):
    monkeypatch.setenv("DREAMOR_MODELS_DIR", str(tiny_checkpoints))
    code, _ = _run(capsys, "bench", "--out", tmp_path / "b", "--lengths", "40", "--presets", "fast",
                   "--methods", "vae_only,input", "--threads", "1", "--quiet")
    assert code == 0
    rows = json.loads((tmp_path / "b" / "bench.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["vae_only", "input"]
    assert rows[0]["ratio_to_vae_only"] == 1.0 and all(r["seconds"] > 0 and r["peak_rss_mb"] > 50 for r in rows)
    assert "| 40 | input |" in (tmp_path / "b" / "bench.md").read_text()


def test_clips_per_file_takes_the_first_clips_of_each_file(takes, tmp_path, capsys):
    out = tmp_path / "out"
    code, _ = _run(capsys, "eval", takes, "--clip-frames", "60", "--clips-per-file", "1", "--no-plots", "--out", out, "--quiet")
    assert code == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["clips"] == 3 and "--clips-per-file 1" in rep["command"]
    code, io = _run(capsys, "eval", takes, "--clips-per-file", "0", "--out", out, "--quiet")
    assert code == 2 and "--clips-per-file 0" in io.err


def test_set_overrides_reach_the_refinement_and_the_report_command(tmp_path, mocap_dir, capsys, monkeypatch,
                                                                    tiny_checkpoints):
    from dreamor.evaluate import baselines
    from dreamor.refine import api

    monkeypatch.setenv("DREAMOR_MODELS_DIR", str(tiny_checkpoints))
    monkeypatch.setattr(baselines, "_MODELS", {})
    seen, real = [], api.refine

    def spy(clip, visible=None, config=None, **kw):
        seen.append(config)
        return real(clip, visible, config, **kw)

    monkeypatch.setattr(api, "refine", spy)
    code, _ = _run(capsys, "eval", mocap_dir / BANDAI[2], "--methods", "dreamor", "--preset", "fast", "--clip-frames", "45",
                   "--max-clips", "1", "--no-plots", "--quiet", "--set", "iters=3", "--set", "weights.sds=0",
                   "--out", tmp_path / "out")
    assert code == 0
    assert seen and all(c.iters == 3 and c.weights.sds == 0 and c.preset == "fast" for c in seen)
    assert "--set iters=3 --set weights.sds=0" in (tmp_path / "out" / "report.md").read_text()


def test_a_bad_set_is_refused_before_any_work(takes, tmp_path, capsys):
    code, cap = _run(capsys, "eval", takes, "--set", "weights.nope=1", "--out", tmp_path / "out")
    assert code == 2 and "no such weights setting" in cap.err and "sds" in cap.err
    assert not (tmp_path / "out").exists()


def test_bodies_give_one_report_per_body_and_a_summary(takes, tmp_path, capsys):
    out = tmp_path / "out"
    code, io = _run(capsys, "eval", takes, "--methods", "input,interp", "--bodies", "native,smpl,x1.2",
                    "--clip-frames", "60", "--clips-per-file", "1", "--no-plots", "--out", out, "--quiet")
    assert code == 0, io.err
    summary = json.loads((out / "bodies.json").read_text())
    assert list(summary["bodies"]) == ["native", "smpl", "x1.2"] and "--bodies native,smpl,x1.2" in summary["command"]
    native, big = summary["bodies"]["native"]["input"], summary["bodies"]["x1.2"]["input"]
    # holding hidden legs at rest on a body 1.2 x as large: every error 1.2 x as large
    assert big["occ_cm"] == pytest.approx(1.2 * native["occ_cm"], rel=1e-3) and big["occ_vs_native"] == pytest.approx(1.2, rel=1e-3)
    assert summary["bodies"]["smpl"]["interp"]["clips_worse_than_input"] is not None
    for body in ("native", "smpl", "x1.2"):
        rep = json.loads((out / body / "report.json").read_text())
        assert rep["settings"]["body"] == body and rep["clips"] == 3
    assert "| x1.2 | interp |" in (out / "bodies.md").read_text()
    code, io = _run(capsys, "eval", takes, "--bodies", "native,giant", "--out", tmp_path / "bad", "--quiet")
    assert code == 2 and "unknown body 'giant'" in io.err and not (tmp_path / "bad").exists()


def test_pin_every_keys_full_body_poses_and_scores_them_apart(tmp_path, mocap_dir, capsys, monkeypatch, tiny_checkpoints):
    from dreamor.evaluate import baselines

    monkeypatch.setenv("DREAMOR_MODELS_DIR", str(tiny_checkpoints))
    monkeypatch.setattr(baselines, "_MODELS", {})
    code, _ = _run(capsys, "eval", mocap_dir / BANDAI[2], "--methods", "input,dreamor", "--preset", "fast",
                   "--clip-frames", "45", "--max-clips", "1", "--pin-every", "20", "--no-plots", "--quiet",
                   "--out", tmp_path / "out")
    assert code == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["methods"]["dreamor"]["pin_cm"] < 0.5  # the engine returns pins where given
    assert "--pin-every 20" in report["command"] and "| Pin |" in (tmp_path / "out" / "report.md").read_text()
    code, err = _run(capsys, "eval", mocap_dir / BANDAI[2], "--pin-every", "0", "--out", tmp_path / "bad")
    assert code == 2 and "--pin-every 0" in err.err

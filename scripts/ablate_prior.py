"""What the prior contributes: one `dreamor eval` per configuration on both validation splits, then one table.

    python scripts/ablate_prior.py OUT [--preset fast] [--clips 12] [--only NAME,...] [--protocol lower_body|noisy]
                                       [--samples N] [--bodies native,smpl,...]

Lower body hidden (or ``--protocol noisy``: 4 cm noise on every joint, nothing hidden), 150-frame clips, the native
bodies; the clips are the first ``--clips`` of each split's list in scripts/eval_bodies.sh. Every configuration is a
list of ``--set`` settings (``CONFIGS``); ``infill`` (the first guess) is always run: the ratios' baseline. Writes
OUT/<config>/<split>/report.* and OUT/ablation.md / .json: hidden-joint error per split (all joints under
``noisy``), its ratio to the baseline (``infill``; ``input`` under ``noisy``) and to the engine without the prior
(``no_sds``, where ``--only`` names it), visible error and acceleration error; the leg-speed ratio and toe skating;
with ``--samples N`` (the engine's methods draw N completions) best-of-N, their spread and the doubt's calibration
(Spearman over clips, clips over 20 cm flagged).
``--bodies`` puts every clip on other bodies too (one table per body).
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: name -> (method, settings[, preset]). ``base`` is the preset as shipped; a third entry overrides ``--preset``.
CONFIGS: dict[str, tuple] = {
    "infill": ("infill", []),
    "input": ("input", []),
    "vae_only": ("vae_only", []),
    "base": ("dreamor", []),
    "no_sds": ("dreamor", ["weights.sds=0"]),
    "k1": ("dreamor", ["denoise_steps=1"]),
    "k2": ("dreamor", ["denoise_steps=2"]),
    "k5": ("dreamor", ["denoise_steps=5"]),
    "guess_fades": ("dreamor", ["guess_final=0"]),
    "guess_50": ("dreamor", ["weights.guess=50"]),
    "sds_x10": ("dreamor", ["weights.sds=0.5"]),
    "t_anneal": ("dreamor", ["t_anneal=true", "t_range=0.2,0.8"]),
    "sds_x10_guess_fades": ("dreamor", ["weights.sds=0.5", "guess_final=0"]),
    # observation-guided denoising: the prior's targets moved to meet the visible joints, then trusted more
    "obs_guide": ("dreamor", ["obs_guidance=0.5"]),
    "obs_guide_sds_x10": ("dreamor", ["obs_guidance=0.5", "weights.sds=0.5"]),
    "obs_guide_sds_x100_guess_fades": ("dreamor", ["obs_guidance=0.5", "weights.sds=5", "guess_final=0.2"]),
    # the paper's setting: no completion network (hidden joints start from the rest pose / splines)
    "rest_pose": ("input", []),
    "paper": ("dreamor", [], "paper"),
    "paper_vae_only": ("vae_only", [], "paper"),
    "paper_no_sds": ("dreamor", ["weights.sds=0"], "paper"),
    "paper_obs_guide": ("dreamor", ["obs_guidance=0.5"], "paper"),
    # the window prior (issue #28): the answer starts from an SDEdit of the mean guess noised to prior_t
    "prior_t_0": ("dreamor", ["prior_t=0"]),
    "prior_t_0.1": ("dreamor", ["prior_t=0.1"]),
    "prior_t_0.2": ("dreamor", ["prior_t=0.2"]),
    "prior_t_0.3": ("dreamor", ["prior_t=0.3"]),
    "prior_t_0.5": ("dreamor", ["prior_t=0.5"]),
    "prior_t_0.8": ("dreamor", ["prior_t=0.8"]),
    "paper_k1": ("dreamor", ["denoise_steps=1"], "paper"),
    # ... and K = 1 for the window prior's draws too (they give the paper setting's start)
    "paper_k1_both": ("dreamor", ["denoise_steps=1", "prior_steps=1"], "paper"),
    "paper_no_prior_init": ("dreamor", ["prior_init=false"], "paper"),
    # session 19: the alternatives without the hypotheses network's heads (the window prior's draws only)
    "no_heads": ("dreamor", ["head_alternatives=0"]),
    # session 21: one head and three draws (the spread / coverage trade-off)
    "heads1": ("dreamor", ["head_alternatives=1"]),
    "infill_no_heads": ("infill", ["head_alternatives=0"]),
    "infill_heads1": ("infill", ["head_alternatives=1"]),
    "farthest": ("dreamor", ["farthest_draws=true"]),
    # session 21: the mean guess without its mirror-image average (does averaging damp the legs?)
    "infill_no_mirror": ("infill", ["mirror_guess=false"]),
    "no_mirror": ("dreamor", ["mirror_guess=false"]),
    "infill_farthest": ("infill", ["farthest_draws=true"]),
    "infill_farthest_no_heads": ("infill", ["farthest_draws=true", "head_alternatives=0"]),
}


def split_files(split: str) -> list[str]:
    """The clip list of scripts/eval_bodies.sh for ``split`` (val | unseen)."""
    text = (ROOT / "scripts" / "eval_bodies.sh").read_text()
    m = ROOT.parent / "shared" / "data" / "mocap"
    if split == "val":
        block = text[text.index("val) FILES=") : text.index(";;")]
        return [str(m / p) for p in re.findall(r"\$M/(\S+?\.bvh\.gz)", block)]
    block = text[text.index("unseen) FILES=") :]
    extra = re.search(r"for t in ([\d_ ]+); do\s+FILES=\"\$FILES \$M/extra/", block).group(1).split()
    extra2 = re.search(r"for t in ([\d_ ]+); do FILES=\"\$FILES \$M/extra2/", block).group(1).split()
    return [str(m / "extra" / f"cmu_{t}.bvh.gz") for t in extra] + [str(m / "extra2" / f"cmu_{t}.bvh.gz") for t in extra2]


def run(name: str, split: str, files: list[str], preset: str, out: Path, protocol: str, samples: int = 1,
        bodies: list[str] | None = None) -> dict[str, dict]:
    """One configuration on one split -> {body: the method's report.json entry}."""
    method, settings, *own = CONFIGS[name]
    preset = own[0] if own else preset
    dest = out / name / split
    bodies = bodies or ["native"]
    reports = [dest / "report.json"] if len(bodies) == 1 else [dest / b / "report.json" for b in bodies]  # as eval
    if not all(r.exists() for r in reports):
        cmd = [str(ROOT / ".venv" / "bin" / "dreamor"), "eval", *files, "--protocol", protocol, "--methods", method,
               "--preset", preset, "--clip-frames", "150", "--clips-per-file", "1", "--no-plots", "--quiet",
               "--out", str(dest)]
        if samples > 1 and method in ("dreamor", "vae_only", "no_opt", "infill"):
            cmd += ["--samples", str(samples)]
        if bodies != ["native"]:
            cmd += ["--bodies", ",".join(bodies)]
        for s in settings:
            cmd += ["--set", s]
        print(f"{name} / {split}: {' '.join(settings) or '(as shipped)'}", flush=True)
        subprocess.run(cmd, check=True)
    return {b: json.loads(r.read_text())["methods"][method] for b, r in zip(bodies, reports)}


def _f(v, fmt: str = ".2f") -> str:
    return "—" if v is None else format(v, fmt)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--clips", type=int, default=12)
    ap.add_argument("--only", default=None, help="comma-separated configuration names (default: all)")
    ap.add_argument("--protocol", default="lower_body", choices=("lower_body", "noisy"))
    ap.add_argument("--samples", type=int, default=1, help="completions per clip of the engine's methods")
    ap.add_argument("--bodies", default="native", help="comma-separated bodies (dreamor eval --bodies)")
    args = ap.parse_args()
    bodies = [b.strip() for b in args.bodies.split(",") if b.strip()]
    out = Path(args.out)
    names = args.only.split(",") if args.only else list(CONFIGS)
    ref, key = ("infill", "occ_cm") if args.protocol == "lower_body" else ("input", "all_cm")
    if ref not in names:
        names.insert(0, ref)  # the ratios need it; the ratio to ``no_sds`` only where it is run (--only)
    res = {split: {n: run(n, split, split_files(split)[: args.clips], args.preset, out, args.protocol, args.samples,
                          bodies) for n in names}
           for split in ("val", "unseen")}
    tables = []
    for body in bodies:
        rows = ["| configuration | settings | " + " | ".join(
            f"{s} {'hidden' if key == 'occ_cm' else 'all'} | {s} / {ref} | {s} / no_sds | {s} visible | {s} accel err"
            for s in ("val", "unseen")) + " |", "|---|---|" + "---|" * 10]
        gen = ["| configuration | " + " | ".join(
            f"{s} leg speed | {s} skate | {s} best of N / {ref} | {s} spread | {s} Spearman | {s} bad flagged"
            for s in ("val", "unseen")) + " |", "|---|" + "---|" * 12]
        for n in names:
            cells, more = [], []
            for split in ("val", "unseen"):
                r, base = res[split][n][body], res[split][ref][body]
                nos = res[split]["no_sds"][body] if "no_sds" in res[split] else None
                cells += [f"{r[key]:.2f}", f"{r[key] / base[key]:.3f}", _f(r[key] / nos[key] if nos else None, ".3f"),
                          f"{r['vis_cm']:.2f}", f"{r['accel_err_ms2']:.2f}"]
                cal = r.get("calibration") or {}
                best = r.get("best_cm")
                more += [_f(r.get("leg_speed")), _f(r.get("skate_cm"), ".3f"),
                         _f(best / base[key] if best is not None else None, ".3f"), _f(r.get("spread_cm")),
                         _f(cal.get("spearman")),
                         f"{cal['bad_flagged']} / {cal['bad_clips']}" if cal else "—"]
            method, settings, *own = CONFIGS[n]
            label = f"`{method}` " + (f"`--preset {own[0]}` " if own else "") + " ".join(f"`{s}`" for s in settings)
            rows.append(f"| {n} | {label} | " + " | ".join(cells) + " |")
            gen.append(f"| {n} | " + " | ".join(more) + " |")
        head = f"## Body: {body}\n\n" if bodies != ["native"] else ""
        tables.append(head + "\n".join(rows) + "\n\n" + "\n".join(gen) + "\n")
    cmd = "python scripts/ablate_prior.py " + " ".join(sys.argv[1:])
    what = "lower body hidden" if key == "occ_cm" else "4 cm noise on every joint, nothing hidden"
    text = (f"# What the prior contributes ({args.preset}, {what}, first {args.clips} clips of each split)\n\n"
            f"Command: `{cmd}`. Joint errors in cm, acceleration error in m/s²; ratios below 1 are better than "
            f"`{ref}` or than the same engine without the prior (`no_sds`). Leg speed: root-relative speed of the "
            f"hidden joints, result / truth (1 = legs that move as much as real ones); skate in cm per frame; with "
            f"--samples: best of N and the completions' mean pairwise distance (cm) on the hidden joints, the doubt's "
            f"Spearman correlation with the real error over clips and the clips over 20 cm flagged.\n\n"
            + "\n".join(tables))
    (out / "ablation.md").write_text(text)
    (out / "ablation.json").write_text(json.dumps(res, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the prior contributes: one `dreamor eval` per configuration on both validation splits, then one table.

    python scripts/ablate_prior.py OUT [--preset fast] [--clips 12] [--only NAME,...] [--protocol lower_body|noisy]

Lower body hidden (or ``--protocol noisy``: 4 cm noise on every joint, nothing hidden), 150-frame clips, the native bodies; the clips are the first ``--clips`` of each split's list in
scripts/eval_bodies.sh. Every configuration is a list of ``--set`` settings (``CONFIGS``); ``infill`` (the first
guess) and ``vae_only`` (HuMoR's prior) are run once as the baselines. Writes OUT/<config>/<split>/report.* and
OUT/ablation.md / .json: hidden-joint error per split (all joints under ``noisy``), its ratio to the baseline
(``infill``; ``input`` under ``noisy``) and to the engine without the prior (``no_sds``), visible error and
acceleration error.
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


def run(name: str, split: str, files: list[str], preset: str, out: Path, protocol: str) -> dict:
    method, settings, *own = CONFIGS[name]
    preset = own[0] if own else preset
    dest = out / name / split
    if not (dest / "report.json").exists():
        cmd = [str(ROOT / ".venv" / "bin" / "dreamor"), "eval", *files, "--protocol", protocol, "--methods", method,
               "--preset", preset, "--clip-frames", "150", "--clips-per-file", "1", "--no-plots", "--quiet",
               "--out", str(dest)]
        for s in settings:
            cmd += ["--set", s]
        print(f"{name} / {split}: {' '.join(settings) or '(as shipped)'}", flush=True)
        subprocess.run(cmd, check=True)
    return json.loads((dest / "report.json").read_text())["methods"][method]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--clips", type=int, default=12)
    ap.add_argument("--only", default=None, help="comma-separated configuration names (default: all)")
    ap.add_argument("--protocol", default="lower_body", choices=("lower_body", "noisy"))
    args = ap.parse_args()
    out = Path(args.out)
    names = args.only.split(",") if args.only else list(CONFIGS)
    ref, key = ("infill", "occ_cm") if args.protocol == "lower_body" else ("input", "all_cm")
    for n in ("no_sds", ref):
        if n not in names:
            names.insert(0, n)  # the ratios need them
    res = {split: {n: run(n, split, split_files(split)[: args.clips], args.preset, out, args.protocol) for n in names}
           for split in ("val", "unseen")}
    rows = ["| configuration | settings | " + " | ".join(
        f"{s} {'hidden' if key == 'occ_cm' else 'all'} | {s} / {ref} | {s} / no_sds | {s} visible | {s} accel err" for s in ("val", "unseen")) + " |",
        "|---|---|" + "---|" * 10]
    for n in names:
        cells = []
        for split in ("val", "unseen"):
            r, base, nos = res[split][n], res[split][ref], res[split]["no_sds"]
            cells += [f"{r[key]:.2f}", f"{r[key] / base[key]:.3f}", f"{r[key] / nos[key]:.3f}",
                      f"{r['vis_cm']:.2f}", f"{r['accel_err_ms2']:.2f}"]
        method, settings, *own = CONFIGS[n]
        label = f"`{method}` " + (f"`--preset {own[0]}` " if own else "") + " ".join(f"`{s}`" for s in settings)
        rows.append(f"| {n} | {label} | " + " | ".join(cells) + " |")
    cmd = "python scripts/ablate_prior.py " + " ".join(sys.argv[1:])
    what = "lower body hidden" if key == "occ_cm" else "4 cm noise on every joint, nothing hidden"
    text = (f"# What the prior contributes ({args.preset}, {what}, first {args.clips} clips of each split)\n\n"
            f"Command: `{cmd}`. Joint errors in cm, acceleration error in m/s²; ratios below 1 are better than "
            f"`{ref}` or than the same engine without the prior (`no_sds`).\n\n" + "\n".join(rows) + "\n")
    (out / "ablation.md").write_text(text)
    (out / "ablation.json").write_text(json.dumps(res, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

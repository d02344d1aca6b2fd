"""The `dreamor` console script. Each subcommand imports its module lazily (fast --help).

User mistakes (DreamorError) print one line, ``error: ...``, and exit with status 2.
"""
from __future__ import annotations

import argparse
import os
import re
import sys

# Before torch loads: OpenMP threads that spin while waiting make 2-thread torch 3-15x slower
# whenever another process is busy on a small machine (measured on the 2-core CPU).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .errors import DreamorError

QUIET_HELP = "no progress bar and no summary lines (warnings and errors still print)"
THREADS_HELP = "torch CPU threads (default or 0: half the cores, one on a 2-core machine: faster for these small networks)"
SET_HELP = ("override one refinement setting (repeatable), for ablations: a RefineConfig field or weights.TERM, "
            "e.g. --set weights.sds=0 --set t_range=0.3,0.9")


def _cmd_convert(args: argparse.Namespace) -> int:
    from .data.convert import run_convert

    return run_convert(args.inputs, args.output, workers=args.workers, quiet=args.quiet)


def _cmd_info(args: argparse.Namespace) -> int:
    from .info import summarize

    for path in args.files:
        print(summarize(path))
    return 0


def _cmd_train_vae(args: argparse.Namespace) -> int:
    from .train.train_vae import run_train

    return run_train(args)


def _cmd_train_infill(args: argparse.Namespace) -> int:
    from .train.train_infill import run_train_infill

    return run_train_infill(args)


def _cmd_train_window_prior(args: argparse.Namespace) -> int:
    from .train.train_window_prior import run_train_window_prior

    return run_train_window_prior(args)


def _cmd_train_hypotheses(args: argparse.Namespace) -> int:
    from .train.train_hypotheses import run_train_hypotheses

    return run_train_hypotheses(args)


def _cmd_train_diffusion(args: argparse.Namespace) -> int:
    from .train.train_diffusion import run_train_diffusion

    return run_train_diffusion(args)


def _cmd_refine(args: argparse.Namespace) -> int:
    from .refine.command import run_refine

    return run_refine(args)


def _cmd_clean(args: argparse.Namespace) -> int:
    from .clean.command import run_clean

    return run_clean(args)


def _cmd_bench(args: argparse.Namespace) -> int:
    from .evaluate.bench import run_bench_cli

    return run_bench_cli(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from dreamor_demo.demo import main as demo_main

    return demo_main(["--out", args.out, "--device", args.device] + (["--quick"] if args.quick else []))


def _cmd_serve(args: argparse.Namespace) -> int:
    from .server.server import run_serve

    return run_serve(args)


def _cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate.run import EvalSettings, run_eval

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    return run_eval(EvalSettings(
        paths=args.paths, out=args.out, protocol=args.protocol, methods=methods, preset=args.preset,
        max_clips=args.max_clips, clips_per_file=args.clips_per_file, clip_frames=args.clip_frames, seed=args.seed, device=args.device,
        noise_cm=args.noise_cm, plots=not args.no_plots, quiet=args.quiet, denoise_steps=args.denoise_steps,
        settings=args.set or [], pin_every=args.pin_every, samples=args.samples, bodies=[b.strip() for b in args.bodies.split(",") if b.strip()] or ["native"],
    ))


def _train_args(t: argparse.ArgumentParser, model: str, preset_help: str, resume_help: str, cache_help: str) -> None:
    """The options every `dreamor train MODEL` takes."""
    t.add_argument("--preset", default="small", help=preset_help)
    t.add_argument("--data", action="append", metavar="PATH[:WEIGHT]",
                   help="folder or file of BVH / clip .npz, with an optional sampling weight; repeatable")
    t.add_argument("--out", default=None, help=f"checkpoint path (default: models/{model}-PRESET.pt)")
    t.add_argument("--resume", action="store_true", help=resume_help)
    t.add_argument("--steps", type=int, default=None, help="total steps (overrides the preset)")
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--device", default="cpu", help="cpu or cuda")
    t.add_argument("--cache", default=None, help=cache_help)
    t.add_argument("--workers", type=int, default=0, help="processes converting the data (default: all cores)")
    t.add_argument("--quiet", action="store_true", help="no progress bars")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dreamor")
    except PackageNotFoundError:
        return "(not installed)"


def _thread_count(text: str) -> int:
    """--threads N: a whole number, 0 or more (0: the default)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"{n}: give 1 or more threads (0: the default)")
    return n


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dreamor", description="DREAMoR motion refinement backend")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "convert",
        help="convert BVH (Bandai, CMU, LAFAN1) to SMPL-22 clip .npz, or a clip .npz to an SMPL-22 BVH",
        description="IN.bvh OUT.npz | IN.npz OUT.bvh | IN_FOLDER... OUT_FOLDER (every .bvh/.bvh.gz inside, recursively)",
    )
    p.add_argument("inputs", nargs="+", help="input file(s) or folder(s)")
    p.add_argument("output", help="output file (.npz or .bvh) or folder")
    p.add_argument("--workers", type=int, default=0, help="processes for folders (default: all cores)")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("info", help="summarise motion files (.bvh, .bvh.gz, .npz) as SMPL-22 clips")
    p.add_argument("files", nargs="+")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("train", help="train a model (the MotionVAE: `dreamor train vae`)")
    train_sub = p.add_subparsers(dest="model", required=True)
    t = train_sub.add_parser(
        "vae", help="train the MotionVAE and its Gaussian conditional prior",
        description="Train the MotionVAE on mocap (default: ../shared/data/mocap/train, extra/ x4 and extra2/ x2), then fit "
                    "its conditional prior. Data parallel: torchrun --nproc_per_node N -m dreamor.cli train vae ...",
    )
    _train_args(t, "vae", "small (2-core CPU, ~1 h), gpu, or tiny (tests)", "continue the checkpoint at --out",
                "data cache folder (default: cache/ in the repository)")
    t.add_argument("--prior-steps", type=int, default=None, help="steps fitting the conditional prior")
    t.add_argument("--batch-size", type=int, default=None, help="windows per step and process")
    t.add_argument("--contact-steps", type=int, default=None,
                   help="afterwards, refit only the decoder's contact outputs to the current contact labels for this "
                        "many steps (with --resume on a trained checkpoint: new labels without training again)")
    t.set_defaults(func=_cmd_train_vae)

    t = train_sub.add_parser(
        "diffusion", help="train the latent diffusion prior on a trained MotionVAE's latents",
        description="Encode the mocap with a trained MotionVAE (latents cached), then train the latent diffusion "
                    "prior p(z_t | x_{t-1}) on them. Writes the EMA model to --out at every checkpoint.",
    )
    t.add_argument("--vae", default=None, help="MotionVAE checkpoint (default: the newest models/vae-*.pt)")
    _train_args(t, "diffusion", "small (2-core CPU, < 1 h), gpu, or tiny (tests)", "continue the run that writes --out",
                "data, latent and resume cache folder (default: cache/ in the repository)")
    t.add_argument("--batch-size", type=int, default=None, help="transitions per step")
    t.add_argument("--init", default=None, metavar="CKPT",
                   help="start a new run from this diffusion checkpoint's weights (same architecture)")
    t.set_defaults(func=_cmd_train_diffusion)

    t = train_sub.add_parser(
        "infill", help="train the joint-completion network (the refinement's first guess for hidden joints)",
        description="Train the network that guesses hidden joints from the visible ones (default data as for the VAE).",
    )
    _train_args(t, "infill", "small (2-core CPU, ~30 min), gpu, or tiny (tests)", "continue the checkpoint at --out",
                "data cache folder (default: cache/ in the repository)")
    t.set_defaults(func=_cmd_train_infill)

    t = train_sub.add_parser(
        "window-prior", help="train the window prior (a diffusion model of hidden joints given what is seen)",
        description="Train the conditional diffusion model over windows of joints that draws alternative completions "
                    "of hidden limbs and gives their doubt (default data as for the VAE).",
    )
    _train_args(t, "window-prior", "small (2-core CPU, a few hours), gpu, or tiny (tests)",
                "continue the checkpoint at --out", "data cache folder (default: cache/ in the repository)")
    t.add_argument("--init", default=None, metavar="CKPT",
                   help="warm-start a new run from this joint-completion checkpoint (models/infill-small.pt)")
    t.set_defaults(func=_cmd_train_window_prior)

    t = train_sub.add_parser(
        "hypotheses", help="train the hypotheses network (a few distinct completions that cover the truth)",
        description="Train the multiple-choice completion network whose heads give the alternatives: each head "
                    "learns the cases the others and the completion network's mean guess miss.",
    )
    _train_args(t, "hypotheses", "small (2-core CPU, ~1 h), gpu, or tiny (tests)",
                "continue the checkpoint at --out", "data cache folder (default: cache/ in the repository)")
    t.add_argument("--init", default="models/infill-small.pt", metavar="CKPT",
                   help="the joint-completion checkpoint to start from and to compete with (default: %(default)s)")
    t.set_defaults(func=_cmd_train_hypotheses)

    p = sub.add_parser(
        "refine", help="refine a motion: fill occluded joints, remove jitter, fix feet (DREAMoR)",
        description="IN is a .bvh/.bvh.gz or clip .npz (its `visible` mask is used unless --occlude is given); "
                    "OUT.npz has the same frames and frame rate, with joints and contacts.",
    )
    p.add_argument("input", help="IN.npz or IN.bvh")
    p.add_argument("output", help="OUT.npz")
    p.add_argument("--occlude", default=None, help="lower_body, a group (left_leg, ...) or JOINT,JOINT,... (SMPL names)")
    p.add_argument("--frames", default=None, help="A:B, the input frames the --occlude / --noisy marks apply to, B not included (default: all)")
    p.add_argument("--preset", default="default", help="fast, default, best, or paper (the paper's configuration)")
    p.add_argument("--method", default="dreamor",
                   help="dreamor, vae_only (HuMoR-style), no_opt, or infill (the first guess alone)")
    p.add_argument("--samples", type=int, default=1, metavar="N",
                   help="completions to return: the answer and N - 1 alternatives (the hypotheses network's 2 likeliest, "
                        "then draws of the window prior), in "
                        "OUT's 'samples' (N, T, 22, 3) with their poses (default 1; at most 16)")
    p.add_argument("--lock-feet", action="store_true",
                   help="feet the result puts in contact do not slide (held in place by IK on the legs)")
    p.add_argument("--noisy", nargs="?", const="all", default=None, metavar="JOINTS",
                   help="the capture is noisy (e.g. tracked from video): smooth its visible joints instead of putting them "
                        "back where observed; with JOINTS (a group or JOINT,JOINT,...), only those joints, over --frames, "
                        "at confidence 0.5")
    p.add_argument("--denoise-steps", type=int, default=None, help="DDIM steps K per target (preset default)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help=SET_HELP)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--vae", default=None, help="MotionVAE checkpoint (default: models/vae-small.pt)")
    p.add_argument("--diffusion", default=None, help="diffusion checkpoint (default: models/diffusion-small.pt)")
    p.add_argument("--threads", type=_thread_count, default=None, help=THREADS_HELP)
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=_cmd_refine)

    p = sub.add_parser(
        "clean", help="clean a whole library: find the capture faults in every take and repair them",
        description="Writes DIR/<name>.npz (clip with joints, contacts and the mask used), DIR/<name>.bvh (SMPL-22) "
                    "and DIR/report.md/.json/faults.png; takes already cleaned with the same settings are skipped.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="motion files or folders (.bvh, .bvh.gz, .npz; recursive)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--occlude", default="auto", metavar="auto|JOINTS",
                   help="auto: find the faults (NaN, frozen limbs, spikes, stretched bones, feet under the floor); or "
                        "joints/groups to re-solve on every frame, e.g. lower_body (default: auto)")
    p.add_argument("--preset", default="default", help="fast, default, best or paper (default: default)")
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes, one model copy and one thread's share of the cores each "
                        "(default: one per CPU core, at most 8)")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="spread the takes over a Ray cluster: its address, auto, or local (start one here); "
                        "needs pip install 'dreamor[ray]'")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help=SET_HELP)
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=_cmd_clean)

    p = sub.add_parser("serve", help="run the refinement backend (ZeroMQ) for the Blender add-on")
    p.add_argument("--connection-file", default=None, help="where to write the connection file")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=_thread_count, default=None, help=THREADS_HELP)
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser(
        "eval", help="evaluate refinement methods on clean clips under an occlusion protocol (the paper's metrics)",
        description="Read PATHs (.bvh/.bvh.gz/.npz files or folders), cut them into clips, hide joints by the protocol, "
                    "run each method and write DIR/report.json, DIR/report.md (a table like the paper's Table 1), "
                    "DIR/per_clip.csv and PNG plots. Unreadable files are reported and skipped.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="motion files or folders (searched recursively)")
    p.add_argument("--protocol", default="lower_body", choices=["lower_body", "limb_gaps", "noisy"])
    p.add_argument("--methods", default="input,interp",
                   help="comma-separated: input, interp, infill, vae_only, no_opt, dreamor (default: input,interp)")
    p.add_argument("--preset", default="default", choices=["fast", "default", "best", "paper"], help="refinement preset")
    p.add_argument("--max-clips", type=int, default=None, help="stop after N clips")
    p.add_argument("--clips-per-file", type=int, default=None, help="only the first N clips of each file")
    p.add_argument("--clip-frames", type=int, default=300, help="clip length in frames at 30 Hz (default 300)")
    p.add_argument("--seed", type=int, default=0, help="seed of the occlusion masks and noise")
    p.add_argument("--noise-cm", type=float, default=4.0, help="noise sigma of the noisy protocol (default 4 cm)")
    p.add_argument("--pin-every", type=int, default=None, metavar="N",
                   help="pin every joint every N frames (a full-body pose key, as an animator blocks): the Pin column is "
                        "their error, Occ / Vis leave them out")
    p.add_argument("--denoise-steps", type=int, default=None, help="DREAMoR's K, DDIM steps per target (preset default)")
    p.add_argument("--samples", type=int, default=1, metavar="N",
                   help="completions per clip for the engine's methods: adds best-of-N and their spread (default 1)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help=SET_HELP)
    p.add_argument("--bodies", default="native", metavar="BODY,...",
                   help="put every clip on each body first: native (its own), smpl (SMPL neutral), xS (its own "
                        "scaled by S, e.g. x1.2); several give DIR/<body>/ reports and DIR/bodies.md (default native)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--out", required=True, metavar="DIR", help="report folder")
    p.add_argument("--threads", type=_thread_count, default=None, help=THREADS_HELP)
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("demo", help="the main job on the bundled sample, in headless Blender through the add-on: "
                       "hide the lower body, refine, render, measure")
    p.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    p.add_argument("--quick", action="store_true", help="a shorter clip and the fast preset (for tests)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="where the backend runs (default: auto, the GPU when there is one)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("bench", help="speed and peak memory of refinement methods on 100 .. 3,600-frame clips")
    p.add_argument("--out", required=True, metavar="DIR", help="writes DIR/bench.json and DIR/bench.md")
    p.add_argument("--lengths", default="100,300,1000,3600", help="clip lengths in frames (30 Hz)")
    p.add_argument("--presets", default="fast,default", help="refinement presets to time")
    p.add_argument("--methods", default="vae_only,dreamor,no_opt,input", help="methods (vae_only is the baseline)")
    p.add_argument("--clip", default=None, help="motion file to loop (default: the bundled sample)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=_thread_count, default=None, help=THREADS_HELP)
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=_cmd_bench)
    return parser


#: options whose value may start with '-' (``--frames -10:50``: argparse would take it for an option and answer
#: "expected one argument"; given as ``--frames=-10:50`` the range check names what is wrong)
_DASH_VALUES = ("--frames",)


def _dash_values_joined(argv: list[str]) -> list[str]:
    out: list[str] = []
    for arg in argv:
        if out and out[-1] in _DASH_VALUES and re.match(r"-\d", arg):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(_dash_values_joined(sys.argv[1:] if argv is None else list(argv)))
    try:
        if args.func in (_cmd_serve, _cmd_eval):  # refine sets them after its checks (torch loads then)
            from .threads import use_threads

            use_threads(args.threads)
        return int(args.func(args) or 0)
    except DreamorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

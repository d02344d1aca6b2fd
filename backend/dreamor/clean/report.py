"""`dreamor clean`'s report: ``DIR/report.json`` (every take's row, totals, settings), ``DIR/report.md`` (the
same as tables) and ``DIR/faults.png`` (where faults were found on the busiest takes), all written whole."""
from __future__ import annotations

import json
from pathlib import Path

from ..files import atomic_write
from .detect import KINDS

QUALITY = (("skate_cm", "skate cm/frame"), ("pen_dist_cm", "penetration cm"), ("accel_ms2", "accel m/s²"))
COLOURS = {"nonfinite": "#444444", "frozen": "#2b7bba", "spike": "#d7301f", "stretch": "#fdae61", "floor": "#1a9850"}


def totals(rows: list[dict], seconds: float, workers: int) -> dict:
    ok = [r for r in rows if r["status"] == "ok"]
    done_now = [r for r in ok if not r.get("skipped")]
    frames = sum(int(r.get("frames", 0)) for r in done_now)
    return {
        "takes": len(rows),
        "ok": len(ok),
        "failed": sum(r["status"] == "failed" for r in rows),
        "skipped_up_to_date": sum(bool(r.get("skipped")) for r in rows),
        "frames_cleaned": frames,
        "seconds": round(seconds, 1),
        "workers": workers,
        "takes_per_minute": round(60.0 * len(done_now) / seconds, 2) if seconds > 0 and done_now else None,
        "frames_per_second": round(frames / seconds, 1) if seconds > 0 and done_now else None,
        "detected": {k: sum(int(r.get("detected", {}).get(k, 0)) for r in ok) for k in (*KINDS, "hidden")},
    }


def _cell(value, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def markdown(report: dict) -> str:
    t, s = report["totals"], report["settings"]
    lines = [
        "# dreamor clean",
        "",
        f"{t['takes']} takes: {t['ok']} ok ({t['skipped_up_to_date']} already up to date), {t['failed']} failed; "
        f"{t['frames_cleaned']} frames cleaned in {t['seconds']} s with {t['workers']} worker(s) "
        f"({_cell(t['takes_per_minute'])} takes/min, {_cell(t['frames_per_second'], '{:.1f}')} frames/s). "
        f"Settings: occlude {s['occlude']}, preset {s['preset']}, device {s['device']}.",
        "",
        "Joint-frames flagged, by kind: " + ", ".join(f"{k} {t['detected'][k]}" for k in KINDS)
        + f"; hidden in all {t['detected']['hidden']}.",
        "",
        "| take | status | frames | hidden | " + " | ".join(KINDS) + " | "
        + " | ".join(f"{label} in -> out" for _, label in QUALITY) + " | s |",
        "|---" * (5 + len(KINDS) + len(QUALITY)) + "|",
    ]
    for r in report["takes"]:
        if r["status"] != "ok":
            reason = r.get("reason", "").splitlines()[0] if r.get("reason") else ""
            lines.append(f"| {r['take']} | **failed**: {reason} |" + " |" * (3 + len(KINDS) + len(QUALITY)))
            continue
        d, q = r.get("detected", {}), r.get("quality", {})
        quality = [f"{_cell(q.get('input', {}).get(k))} -> {_cell(q.get('output', {}).get(k))}" for k, _ in QUALITY]
        status = "skipped (up to date)" if r.get("skipped") else "ok"
        lines.append(f"| {r['take']} | {status} | {r.get('frames', '')} | {100 * r.get('hidden_share', 0):.1f}% | "
                     + " | ".join(str(d.get(k, 0)) for k in KINDS) + " | " + " | ".join(quality)
                     + f" | {r.get('seconds', '')} |")
    lines += doubt_section(report["takes"])
    return "\n".join(lines) + "\n"


def doubt_section(rows: list[dict]) -> list[str]:
    """Markdown: the takes whose repair is in doubt (frames where some joint may be over 10 cm off) and the
    frozen-limb runs where the input was kept (as plausible as the repair)."""
    doubtful = [r for r in rows if r["status"] == "ok" and (r.get("doubt") or {}).get("runs")]
    kept = [r for r in rows if r["status"] == "ok" and r.get("kept_input")]
    out = ["", "## Repairs in doubt", ""]
    if not doubtful:
        out.append("No repair is in doubt (nowhere may a re-solved joint be more than 10 cm off)." if any(
            r.get("doubt") for r in rows) else "No doubt was measured (no window prior, or nothing re-solved).")
    else:
        out += ["Frames where the engine says some re-solved joint may be more than 10 cm off: check these first.", "",
                "| take | frames in doubt | mean doubt cm | max doubt cm |", "|---|---|---|---|"]
        for r in doubtful:
            d = r["doubt"]
            spans = ", ".join(f"{a}..{b - 1}" for a, b in d["runs"][:8]) + (" ..." if len(d["runs"]) > 8 else "")
            out.append(f"| {r['take']} | {spans} | {d['mean_cm']:.1f} | {d['max_cm']:.1f} |")
    if kept:
        out += ["", "Frozen limbs kept as captured (the held pose lies within the engine's doubt of its repair):", ""]
        out += [f"- {r['take']}: frames " + ", ".join(f"{a}..{b - 1} ({n} joints)" for a, b, n in r["kept_input"])
                for r in kept]
    return out


def fault_plot(rows: list[dict], path: Path, most: int = 8) -> Path | None:
    """Where each kind of fault was found (frames) on the ``most`` takes with the most hidden joint-frames."""
    busy = sorted((r for r in rows if r["status"] == "ok" and r.get("detected", {}).get("hidden")),
                  key=lambda r: -r["detected"]["hidden"])[:most]
    if not busy:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 0.5 + 0.45 * len(busy)), dpi=100)
    for y, r in enumerate(busy):
        frames = max(int(r.get("frames", 1)), 1)
        ax.plot([0, 1], [y, y], color="#dddddd", lw=6, solid_capstyle="butt")
        for k, spans in r.get("fault_runs", {}).items():
            for a, b in spans:
                ax.plot([a / frames, b / frames], [y, y], color=COLOURS.get(k, "k"), lw=6, solid_capstyle="butt")
    ax.set_yticks(range(len(busy)), [r["take"] for r in busy], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1], ["start", "", "middle", "", "end"], fontsize=8)
    for k in KINDS:
        ax.plot([], [], color=COLOURS[k], lw=6, label=k)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(KINDS), fontsize=8, frameon=False)
    ax.set_title("Faults found on the busiest takes (frames with any joint flagged)", fontsize=10, pad=22)
    with atomic_write(path) as fh:
        fig.savefig(fh, format="png", bbox_inches="tight")
    plt.close(fig)
    return path


def write_report(out_dir: Path, rows: list[dict], settings: dict, seconds: float, workers: int) -> dict:
    """Write report.json, report.md and faults.png (where any take had faults) into ``out_dir``; returns the
    report."""
    report = {"settings": settings, "totals": totals(rows, seconds, workers), "takes": rows}
    with atomic_write(out_dir / "report.json", "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=1)
    with atomic_write(out_dir / "report.md", "w", encoding="utf-8") as fh:
        fh.write(markdown(report))
    if fault_plot(rows, out_dir / "faults.png") is None:  # no fault found: an earlier run's plot would mislead
        (out_dir / "faults.png").unlink(missing_ok=True)
    return report

#!/usr/bin/env python3
"""Build the installable Blender extension zip of the DREAMoR add-on.

    python scripts/build_addon.py              # dist/dreamor-<version>.zip with pyzmq wheels
    python scripts/build_addon.py --no-wheels  # offline: no wheels (the backend link is then unavailable)

The zip holds ``blender_addon/`` (less ``wheels/`` and caches) at its root, plus:

- ``dreamor_wire/``: verbatim copies of the wire modules of ``backend/dreamor/server/`` (``WIRE_FILES``:
  envelope, messages, connection file, the ``protocol`` facade and the client; stdlib + numpy + zmq,
  relative imports), so the wire format has one source;
- ``dreamor_body/``: verbatim copies of ``backend/dreamor/body/skeleton.py`` and its
  ``smpl22_rest_joints.json`` (names, parents, groups, contact joints, the SMPL neutral rest
  joints; numpy only), so the skeleton has one source;
- ``wheels/``: pyzmq for Linux, Windows and macOS (downloaded here with ``pip download`` into
  ``blender_addon/wheels/``, which git ignores) and listed in the zip's manifest.

Install the zip in Blender (Edit > Preferences > Get Extensions > Install from Disk) or
headless with ``bpy.ops.extensions.package_install_files(filepath=..., repo="user_default")``.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ADDON = ROOT / "blender_addon"
#: The wire, copied verbatim (standard library + numpy + zmq; relative imports among themselves).
WIRE_FILES = ("envelope.py", "messages.py", "connection.py", "protocol.py", "client.py")
WIRE_SRC = ROOT / "backend" / "dreamor" / "server"
BODY_FILES = ("skeleton.py", "smpl22_rest_joints.json")
BODY_SRC = ROOT / "backend" / "dreamor" / "body"
BLENDER_PYTHON = "3.11"  # Blender 4.2 .. 5.0
PYZMQ = "pyzmq==27.3.0"
#: pip --platform tags, one wheel each (pip also accepts older compatible tags, e.g. universal2).
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_28_aarch64",
    "win_amd64",
    "macosx_11_0_arm64",
    "macosx_10_15_x86_64",
)
SKIP_PARTS = {"__pycache__", "wheels", ".pytest_cache"}
REQUIRED_MANIFEST_KEYS = ("schema_version", "id", "version", "name", "tagline", "maintainer", "type",
                          "blender_version_min", "license")  # fmt: skip


def download_wheels(dest: Path, requirement: str = PYZMQ) -> list[Path]:
    """pyzmq wheels for every platform in PLATFORMS (cached in ``dest``)."""
    dest.mkdir(parents=True, exist_ok=True)
    found: list[Path] = []
    for platform in PLATFORMS:
        before = set(dest.glob("*.whl"))
        cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-deps",
               "--platform", platform, "--python-version", BLENDER_PYTHON, "-d", str(dest), requirement]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"pip could not download {requirement} for {platform}:\n{result.stderr[-2000:]}")
        saved = re.findall(r"(?:Saved|File was already downloaded) (\S+\.whl)", result.stdout)
        paths = [Path(p) if Path(p).is_absolute() else dest / Path(p).name for p in saved]
        paths = paths or sorted(set(dest.glob("*.whl")) - before)
        if not paths:
            raise SystemExit(f"pip reported no wheel for {platform}:\n{result.stdout[-2000:]}")
        for p in paths:
            if p.resolve() not in [f.resolve() for f in found]:
                found.append(p)
    return found


def manifest_text(wheels: list[Path]) -> str:
    """The add-on's manifest with the ``wheels`` list filled in (or removed when empty)."""
    text = (ADDON / "blender_manifest.toml").read_text()
    if wheels:
        listing = "wheels = [\n" + "".join(f'  "./wheels/{w.name}",\n' for w in wheels) + "]\n"
    else:
        listing = ""
    text, n = re.subn(r"(?m)^wheels\s*=\s*\[[^\]]*\]\s*$", listing, text)
    if n != 1:
        raise SystemExit("blender_manifest.toml must have one 'wheels = [...]' line for the build to fill")
    data = tomllib.loads(text)
    missing = [k for k in REQUIRED_MANIFEST_KEYS if k not in data]
    if missing or data.get("id") != "dreamor":
        raise SystemExit(f"blender_manifest.toml: missing {missing} or id is not 'dreamor'")
    return text


def addon_files() -> list[Path]:
    return sorted(
        p for p in ADDON.rglob("*")
        if p.is_file() and not (SKIP_PARTS & set(p.relative_to(ADDON).parts)) and p.suffix != ".pyc"
        and p.name != "blender_manifest.toml"
    )  # fmt: skip


def build(out_dir: Path, with_wheels: bool = True, require_wire: bool = False) -> Path:
    """Write ``out_dir/dreamor-<version>.zip`` and return its path."""
    wheels = download_wheels(ADDON / "wheels") if with_wheels else []
    manifest = manifest_text(wheels)
    version = tomllib.loads(manifest)["version"]
    wire = [WIRE_SRC / f for f in WIRE_FILES if (WIRE_SRC / f).exists()]
    if len(wire) != len(WIRE_FILES):
        message = f"{WIRE_SRC} lacks {[f for f in WIRE_FILES if not (WIRE_SRC / f).exists()]}"
        if require_wire:
            raise SystemExit(message)
        print(f"warning: {message}; building without dreamor_wire (no backend link)", file=sys.stderr)
        wire = []
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"dreamor-{version}.zip"
    tmp = target.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("blender_manifest.toml", manifest)
        for path in addon_files():
            zf.write(path, path.relative_to(ADDON).as_posix())
        if wire:
            zf.writestr("dreamor_wire/__init__.py", '"""Copies of the wire modules of dreamor.server, made by scripts/build_addon.py."""\n')
            for path in wire:
                zf.write(path, f"dreamor_wire/{path.name}")
        zf.writestr("dreamor_body/__init__.py", '"""Copies of dreamor.body.skeleton and its JSON, made by scripts/build_addon.py."""\n')
        for name in BODY_FILES:
            zf.write(BODY_SRC / name, f"dreamor_body/{name}")
        for wheel in wheels:
            zf.write(wheel, f"wheels/{wheel.name}")
    tmp.replace(target)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default: dist/)")
    parser.add_argument("--no-wheels", action="store_true", help="build without pyzmq wheels (offline)")
    parser.add_argument("--require-wire", action="store_true", help="fail when protocol.py/client.py are missing")
    args = parser.parse_args(argv)
    path = build(args.out, with_wheels=not args.no_wheels, require_wire=args.require_wire)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    print(f"{path} ({path.stat().st_size / 1e6:.1f} MB, {len(names)} files, "
          f"{sum(n.startswith('wheels/') for n in names)} wheels)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

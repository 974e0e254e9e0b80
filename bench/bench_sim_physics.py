"""Physics real-time factor of the MuJoCo Franka scene, headless and with one RGB-D camera.

Prints numbers, the targets beside them (never asserted) and the camera run's ratio to the
no-camera baseline measured in the same run. Also writes small pictures for the README:
docs/img/sim_scene.png (overview) and docs/img/sim_camera.png (the front camera's RGB and depth).

    scripts/with-env python bench/bench_sim_physics.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from lps_sim.experts import make_expert  # noqa: E402
from lps_sim.tasks import make_task  # noqa: E402

IMG_DIR = Path(__file__).resolve().parents[1] / "docs" / "img"
TARGET_HEADLESS = 20.0
TARGET_CAMERA = 2.0
CAMERA_HZ = 15.0
SIZE = 224


def expert_targets(task, seconds: float, seed: int = 0) -> tuple[list[np.ndarray], list[float]]:
    """A real pick-and-place command stream (10 Hz expert, interpolated to 100 Hz), recorded once."""
    obs = task.reset(seed)
    expert = make_expert(task, "clean", 10.0, seed)
    qs, gs, prev = [], [], obs["arm_joint_positions"]
    n = round(seconds / task.config.control_period_s)
    while len(qs) < n:
        q, g = expert.act(obs)
        for k in range(10):
            res = task.step(prev + (k + 1) / 10 * (q - prev), g)
            qs.append(prev + (k + 1) / 10 * (q - prev))
            gs.append(g)
        prev, obs = q, res.observation
    return qs[:n], gs[:n]


def run(task, qs, gs, camera: bool, seed: int = 0) -> tuple[float, int]:
    """Replay the command stream; returns (real-time factor, frames rendered)."""
    task.reset(seed)
    period = task.config.control_period_s
    next_frame, frames = 0.0, 0
    if camera:
        task.render("front", SIZE, SIZE)  # renderer creation is set-up, not per-frame cost
    start = time.perf_counter()
    for q, g in zip(qs, gs, strict=True):
        task.step(q, g)
        if camera and task.time + 1e-9 >= next_frame:
            task.render("front", SIZE, SIZE)
            task.render("front", SIZE, SIZE, depth=True)
            frames += 1
            next_frame += 1.0 / CAMERA_HZ
    wall = time.perf_counter() - start
    return len(qs) * period / wall, frames


def raw_steps_per_second(task, n: int = 5000) -> float:
    task.reset(0)
    start = time.perf_counter()
    for _ in range(n):
        mujoco.mj_step(task.model, task.data)
    return n / (time.perf_counter() - start)


def save_pictures(task) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    IMG_DIR.mkdir(parents=True, exist_ok=True)
    task.reset(3)
    # Overview from a free camera, with shadows on: this one is for people, not for speed.
    renderer = mujoco.Renderer(task.model, height=360, width=480)
    cam = mujoco.MjvCamera()
    cam.lookat[:] = [0.3, 0.0, 0.3]
    cam.distance, cam.azimuth, cam.elevation = 2.1, 140.0, -22.0
    renderer.update_scene(task.data, camera=cam)
    scene_png = IMG_DIR / "sim_scene.png"
    plt.imsave(scene_png, renderer.render())
    renderer.close()
    rgb = task.render("front", SIZE, SIZE)
    depth = task.render("front", SIZE, SIZE, depth=True)
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.0))
    axes[0].imshow(rgb)
    axes[0].set_title("front camera RGB")
    near = depth[depth < 3.0]  # the background is at the far clipping plane; keep it out of the scale
    im = axes[1].imshow(np.where(depth < 3.0, depth, np.nan), cmap="viridis", vmin=float(near.min()),
                        vmax=float(near.max()))
    axes[1].set_title("depth, m")
    fig.colorbar(im, ax=axes[1], fraction=0.046)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    camera_png = IMG_DIR / "sim_camera.png"
    fig.savefig(camera_png, dpi=80)
    plt.close(fig)
    return [scene_png, camera_png]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="simulated seconds per measurement")
    parser.add_argument("--no-pictures", action="store_true", help="skip writing docs/img/*.png")
    args = parser.parse_args()
    task = make_task("pick_place")
    qs, gs = expert_targets(task, args.seconds)
    raw = raw_steps_per_second(task)
    headless, _ = run(task, qs, gs, camera=False)
    with_cam, frames = run(task, qs, gs, camera=True)
    print(f"scene: pick_place, timestep {task.model.opt.timestep * 1e3:.0f} ms, "
          f"{task.substeps} substeps per {task.config.control_period_s * 1e3:.0f} ms command, "
          f"{args.seconds:g} s of expert commands replayed")
    print(f"mj_step alone                 {raw:10.0f} steps/s")
    print(f"headless real-time factor     {headless:10.1f} x   (target >= {TARGET_HEADLESS:g} x: "
          f"{'met' if headless >= TARGET_HEADLESS else 'NOT met'})")
    print(f"with {SIZE}x{SIZE} RGB-D @ {CAMERA_HZ:g} Hz   {with_cam:10.1f} x   (target >= {TARGET_CAMERA:g} x: "
          f"{'met' if with_cam >= TARGET_CAMERA else 'NOT met'}; {frames} frames)")
    print(f"camera / headless ratio       {with_cam / headless:10.2f}")
    print(f"machine load (1 min avg)      {os.getloadavg()[0]:10.2f}   on {os.cpu_count()} CPUs")
    if not args.no_pictures:
        for p in save_pictures(task):
            print(f"wrote {p.relative_to(IMG_DIR.parents[1])} ({p.stat().st_size // 1024} KiB)")
    task.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Simulated camera: valid RGB, and depth in metres that matches the known table plane."""

import mujoco
import numpy as np
import pytest
from lps_sim import scene as sc
from lps_sim.tasks import make_task

H, W = 120, 160


@pytest.fixture(scope="module")
def task():
    t = make_task("pick_place", wrist_camera=True)
    t.reset(seed=0)
    yield t
    t.close()


def test_rgb_is_a_valid_nonuniform_image(task):
    rgb = task.render("front", H, W)
    assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8
    assert rgb.std() > 10  # not a blank frame
    # The red cube is visible somewhere in the frame.
    red = (rgb[..., 0] > 150) & (rgb[..., 1] < 90) & (rgb[..., 2] < 90)
    assert red.sum() > 5


def _table_pixels(task):
    renderer = sc.make_renderer(task.model, H, W)
    renderer.enable_segmentation_rendering()
    renderer.update_scene(task.data, camera=task.ids.front_camera)
    seg = renderer.render()
    renderer.close()
    return (seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM)) & (seg[..., 0] == task.ids.table_geom)


def test_depth_is_metres_along_the_optical_axis_to_the_table(task):
    depth = task.render("front", H, W, depth=True)
    assert depth.shape == (H, W) and depth.dtype == np.float32
    mask = _table_pixels(task)
    assert mask.sum() > 0.2 * H * W
    # Expected z-depth from the camera pose and a pinhole model, intersecting each pixel's ray with z = 0.
    d = task.data
    cam = task.ids.front_camera
    pos, rot = d.cam_xpos[cam], d.cam_xmat[cam].reshape(3, 3)
    f = 0.5 * H / np.tan(np.deg2rad(task.model.cam_fovy[cam]) / 2)
    v, u = np.nonzero(mask)
    rays_cam = np.stack([(u + 0.5 - W / 2) / f, -(v + 0.5 - H / 2) / f, -np.ones_like(u, float)], axis=1)
    rays_world = rays_cam @ rot.T
    expected = -pos[2] / rays_world[:, 2]  # ray z-component is -1 in camera frame -> t is the z-depth
    err = np.abs(depth[v, u] - expected)
    assert np.median(err) < 0.003 and np.percentile(err, 95) < 0.01
    # The table under the look-at point is |camera - look-at| away.
    assert expected.min() < np.linalg.norm(sc.FRONT_CAMERA_POS - sc.FRONT_CAMERA_LOOKAT) < expected.max()


def test_wrist_camera_sees_the_table_below_the_hand(task):
    depth = task.render("wrist", H, W, depth=True)
    tcp_height = task.tcp_position()[2]
    centre = float(np.median(depth[H // 2 - 5:H // 2 + 5, W // 2 - 5:W // 2 + 5]))
    # The hand points down; the camera sits ~4 cm above the TCP plane on the hand.
    assert tcp_height < centre < tcp_height + 0.15


def test_unknown_camera_is_refused():
    t = make_task("pick_place")
    t.reset(seed=0)
    with pytest.raises(ValueError, match="`camera` must be 'front'"):
        t.render("wrist")
    t.close()


def test_lighting_profile_changes_the_image(task):
    task.reset(seed=3, profile="nominal")
    base = task.render("front", H, W).astype(float).mean()
    means = []
    for seed in range(4):
        task.reset(seed=seed, profile="camera_lighting")
        means.append(task.render("front", H, W).astype(float).mean())
    assert max(abs(m - base) for m in means) > 3.0

"""Randomisation profiles: validation, and each profile changes what it says (and nothing else)."""

import numpy as np
import pytest
from lps_sim.randomization import ProfileError, available_profiles, load_profile, parse_profile
from lps_sim.tasks import make_task


@pytest.fixture(scope="module")
def task():
    t = make_task("pick_place")
    yield t
    t.close()


def _snapshot(task):
    m, cube = task.model, task._cube_body
    geom = task._cube_geom
    arm = task.ids.arm_actuators
    return {
        "mass": m.body_mass[cube].copy(),
        "size": m.geom_size[geom].copy(),
        "friction": m.geom_friction[geom].copy(),
        "kp": m.actuator_gainprm[arm, 0].copy(),
        "kv": m.actuator_biasprm[arm, 2].copy(),
        "gripper_kp": m.actuator_gainprm[task.ids.gripper_actuator, 0].copy(),
        "cam_pos": m.cam_pos[task.ids.front_camera].copy(),
        "cam_quat": m.cam_quat[task.ids.front_camera].copy(),
        "light": m.light_diffuse.copy(),
    }


EXPECTED_CHANGES = {
    "nominal": set(),
    "object_gap": {"mass", "size", "friction"},
    "actuator_gap": {"kp", "kv", "gripper_kp"},
    "control_latency": set(),
    "observation_noise": set(),
    "camera_lighting": {"cam_pos", "cam_quat", "light"},
    "camera_calibration": {"cam_pos", "cam_quat"},
    "camera_stream": set(),  # frame losses and latency: the sim bridge's camera path
    "sim2real": {"mass", "size", "friction", "kp", "kv", "gripper_kp", "cam_pos", "cam_quat", "light"},
}


def test_every_shipped_profile_loads_and_is_covered_here():
    names = available_profiles()
    assert set(names) == set(EXPECTED_CHANGES)
    for name in names:
        assert load_profile(name).name == name


@pytest.mark.parametrize("name", sorted(EXPECTED_CHANGES))
def test_profile_changes_exactly_what_it_says(task, name):
    task.reset(seed=0, profile="nominal")
    nominal = _snapshot(task)
    task.reset(seed=0, profile=name)
    changed = {k for k, v in _snapshot(task).items() if not np.array_equal(v, nominal[k])}
    assert changed == EXPECTED_CHANGES[name]
    profile = load_profile(name)
    lo, hi = profile.control.latency_steps
    assert lo <= task.sampled.latency_steps <= hi
    # Back to nominal restores the model exactly.
    task.reset(seed=0, profile="nominal")
    after = _snapshot(task)
    for k in nominal:
        np.testing.assert_array_equal(after[k], nominal[k])


def test_object_gap_scales_stay_in_their_ranges(task):
    p = load_profile("object_gap")
    for seed in range(5):
        task.reset(seed=seed, profile=p)
        s = task.sampled
        assert p.object.mass_scale[0] <= s.mass_scale <= p.object.mass_scale[1]
        assert p.object.size_scale[0] <= s.size_scale <= p.object.size_scale[1]
        assert task.cube_half == pytest.approx(0.0225 * s.size_scale)
        # The cube is placed resting on the table whatever its size.
        assert task.object_position()[2] == pytest.approx(task.cube_half, abs=2e-3)


def test_same_seed_draws_the_same_parameters(task):
    task.reset(seed=5, profile="sim2real")
    a = task.sampled
    task.reset(seed=6, profile="sim2real")
    task.reset(seed=5, profile="sim2real")
    b = task.sampled
    np.testing.assert_array_equal(a.kp_scale, b.kp_scale)
    assert (a.mass_scale, a.latency_steps, a.light_scale) == (b.mass_scale, b.latency_steps, b.light_scale)


def test_control_latency_delays_the_response_by_the_drawn_periods(task):
    for seed in range(3):
        obs = task.reset(seed=seed, profile="control_latency")
        k = task.sampled.latency_steps
        q = obs["arm_joint_positions"].copy()
        q0 = q[0]
        q[0] += 0.2
        moved = []
        for _ in range(k + 3):
            moved.append(abs(task.step(q, 0.08).observation["arm_joint_positions"][0] - q0) > 1e-3)
        # The command of step 1 takes effect at step k + 1.
        assert moved == [False] * k + [True] * 3, (k, moved)


def test_observation_noise_has_the_stated_size(task):
    obs = task.reset(seed=1, profile="observation_noise")
    std = load_profile("observation_noise").observation
    errs_q, errs_obj = [], []
    for _ in range(300):
        res = task.step(obs["arm_joint_positions"], 0.08)
        errs_q.append(res.observation["arm_joint_positions"] - task.data.qpos[task.ids.arm_qpos])
        errs_obj.append(res.observation["object_position"] - task.object_position())
    assert np.std(errs_q) == pytest.approx(std.joint_position_std, rel=0.15)
    assert np.std(errs_obj) == pytest.approx(std.object_position_std, rel=0.15)
    # Nominal observations are exact.
    task.reset(seed=1, profile="nominal")
    res = task.step(obs["arm_joint_positions"], 0.08)
    np.testing.assert_array_equal(res.observation["arm_joint_positions"], task.data.qpos[task.ids.arm_qpos])


@pytest.mark.parametrize("raw, match", [
    ({"name": "x", "objects": {}}, r"`objects`: unknown key; allowed keys: name, description, object"),
    ({"name": "x", "object": {"mass": [1, 2]}}, r"`object`.mass: unknown key; allowed keys: mass_scale"),
    ({"name": "x", "object": {"mass_scale": [2, 1]}}, r"mass_scale: expected a range of scales 0 < low <= high"),
    ({"name": "x", "object": {"mass_scale": 2}}, r"mass_scale: expected a range \[low, high\]"),
    ({"name": "x", "control": {"latency_steps": [0.5, 2]}}, r"latency_steps: expected an integer"),
    ({"name": "x", "observation": {"joint_position_std": -1}}, r"joint_position_std: expected a standard deviation"),
    ({"object": {}}, r"`name`: expected a non-empty string"),
])
def test_invalid_profiles_name_the_key(raw, match):
    with pytest.raises(ProfileError, match=match):
        parse_profile(raw)


def test_unknown_profile_name_lists_the_available(tmp_path):
    with pytest.raises(ProfileError, match="Profile 'moon' not found. Available profiles: actuator_gap"):
        load_profile("moon")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nlighting: {brightness: [1, 2]}\n")
    with pytest.raises(ProfileError, match=r"bad.yaml: `lighting`.brightness: unknown key"):
        load_profile(bad)


def test_camera_stream_draws_a_latency_in_its_range_and_the_rest_keeps_its_episodes(task):
    p = load_profile("camera_stream")
    latencies = []
    for seed in range(6):
        task.reset(seed=seed, profile=p)
        latencies.append(task.sampled.camera_latency_s)
        assert task.sampled.camera.frame_drop_prob == p.camera.frame_drop_prob
    assert all(p.camera.latency_s[0] <= x <= p.camera.latency_s[1] for x in latencies)
    assert len(set(latencies)) == 6
    # A profile without frame latency draws none: its episodes are what they were before it existed.
    task.reset(seed=3, profile="camera_lighting")
    assert task.sampled.camera_latency_s == 0.0


@pytest.mark.parametrize("section,message", [
    ({"frame_drop_prob": 1.0}, "probability in \\[0, 1\\)"),
    ({"frame_drop_prob": -0.1}, "probability"),
    ({"latency_s": [0.1, 0.05]}, "0 <= low <= high <= 1 s"),
    ({"latency_s": [0.0, 2.0]}, "0 <= low <= high <= 1 s"),
    ({"latency_s": 0.1}, "\\[low, high\\] seconds"),
])
def test_camera_stream_keys_are_validated(section, message):
    with pytest.raises(ProfileError, match=message):
        parse_profile({"name": "bad", "camera": section})

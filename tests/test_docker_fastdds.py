"""config/fastdds_localhost.xml: two real rclpy processes pass a 640x480 rgb8 image through it.

Each run starts a publisher and a subscriber process (docker/fastdds_probe.py) on this test run's
ROS_DOMAIN_ID with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (tests/conftest.py sets both). Whether
the profile was really loaded is read from the subscriber's own memory map: Fast DDS maps a
shared-memory segment of the configured size (16 MiB) only when the profile took effect.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PROFILE = REPO / "config" / "fastdds_localhost.xml"
SEGMENT = 16 * 2**20
NS = {"d": "http://www.eprosima.com"}

_spec = importlib.util.spec_from_file_location("fastdds_probe", REPO / "docker" / "fastdds_probe.py")
probe = importlib.util.module_from_spec(_spec)
sys.modules["fastdds_probe"] = probe
_spec.loader.exec_module(probe)


def test_profile_declares_shm_16mib_and_loopback_udp_only():
    root = ET.parse(PROFILE).getroot()
    transports = {t.findtext("d:transport_id", namespaces=NS): t
                  for t in root.iterfind(".//d:transport_descriptor", NS)}
    kinds = {tid: t.findtext("d:type", namespaces=NS) for tid, t in transports.items()}
    assert sorted(kinds.values()) == ["SHM", "UDPv4"]
    shm = next(t for t in transports.values() if t.findtext("d:type", namespaces=NS) == "SHM")
    assert int(shm.findtext("d:segment_size", namespaces=NS)) == SEGMENT
    udp = next(t for t in transports.values() if t.findtext("d:type", namespaces=NS) == "UDPv4")
    allowed = [a.text for a in udp.iterfind("d:interfaceWhiteList/d:address", NS)]
    assert allowed == ["127.0.0.1"]
    participant = root.find(".//d:participant", NS)
    assert participant.get("is_default_profile") == "true"
    assert participant.findtext("d:rtps/d:useBuiltinTransports", namespaces=NS) == "false"
    used = [t.text for t in participant.iterfind("d:rtps/d:userTransports/d:transport_id", NS)]
    assert sorted(used) == sorted(transports)


def _run(profile: Path | None, frames: int = 30) -> dict:
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    topic = f"lps_test/image_{os.getpid()}_{'profile' if profile else 'builtin'}"
    return probe.run_pair(frames=frames, rate_hz=30.0, profile=profile, topic=topic, timeout_s=40.0)


@pytest.mark.ros
def test_image_crosses_two_processes_with_the_profile():
    report = _run(PROFILE)
    assert report["profile"] == str(PROFILE)
    assert report["errors"] == []
    assert report["received"] == report["expected"] == 30, report["sub_stderr"]
    assert report["distinct"] == 30
    assert report["pub_returncode"] == 0, report["pub_stderr"]
    # The profile's segment, not Fast DDS's built-in 0.5 MiB one, carried the frames.
    assert report["shm_segments"] and report["shm_segments"][0] >= SEGMENT, report["shm_segments"]


@pytest.mark.ros
def test_without_the_profile_the_segment_check_tells_the_difference():
    report = _run(None, frames=10)
    assert report["received"] == 10 and report["errors"] == []
    assert all(size < SEGMENT for size in report["shm_segments"]), report["shm_segments"]

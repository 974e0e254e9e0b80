"""The runtime core must stay importable without rclpy and torch (it runs in scripts and on robots)."""

from __future__ import annotations

import subprocess
import sys


def test_core_imports_neither_rclpy_nor_torch():
    code = ("import sys, lps_steering.core, lps_steering.core.controller; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'torch')); "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"core imported {out.stdout.strip()} {out.stderr[-500:]}"


def test_the_tiny_test_models_are_written_without_torch(tmp_path):
    # The runtime's tests, the node demo and the benchmarks build their models with
    # lps_train.tiny: they must run where torch is not installed.
    code = ("import sys; from lps_train.tiny import build_tiny_models; "
            f"m = build_tiny_models({str(tmp_path)!r}); "
            "from lps_steering.core.manifest import load_manifest; "
            "[load_manifest(p) for p in (m.decoder, *m.heads.values())]; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'torch'); "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"imported {out.stdout.strip()} {out.stderr[-500:]}"

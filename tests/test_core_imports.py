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

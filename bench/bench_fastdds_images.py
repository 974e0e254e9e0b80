"""640x480 rgb8 images between two processes: Fast DDS defaults vs config/fastdds_localhost.xml.

Target: the shipped profile beats the defaults for camera-sized messages (ratio > 1).
"""

import subprocess
import sys
from pathlib import Path

probe = Path(__file__).resolve().parent.parent / "docker" / "fastdds_probe.py"
sys.exit(subprocess.call([sys.executable, str(probe), "compare", "--frames", "150"]))

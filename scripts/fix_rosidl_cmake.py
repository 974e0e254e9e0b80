"""Rewrite the wheel builder's Python paths in the ROS wheels' CMake export files.

The ros-* wheels on PyPI were built in a manylinux container; about 14
``*_rosidl_generator_pyExport.cmake`` files under ``<venv>/share`` still name that container's
Python include directory and numpy include directory, and CMake refuses to configure any
interface package against them. Point them at this interpreter instead.
"""

import re
import sys
import sysconfig
from pathlib import Path

import numpy

BUILDER_PREFIX = "/opt/python/cp311-cp311"  # the manylinux builder's interpreter (not ours)
_INCLUDE = re.compile(re.escape(BUILDER_PREFIX) + r"/include/python3\.\d+")
_NUMPY = re.compile(re.escape(BUILDER_PREFIX) + r"/lib/python3\.\d+/site-packages/numpy/_core/include")


def main(venv: str) -> None:
    include = sysconfig.get_paths()["include"]
    numpy_include = numpy.get_include()
    fixed = 0
    for path in Path(venv, "share").rglob("*.cmake"):
        text = path.read_text()
        if BUILDER_PREFIX not in text:
            continue
        new = _NUMPY.sub(numpy_include, _INCLUDE.sub(include, text))
        if new != text:
            path.write_text(new)
            fixed += 1
    print(f"rewrote {fixed} CMake files to include={include} numpy={numpy_include}")


if __name__ == "__main__":
    main(sys.argv[1])

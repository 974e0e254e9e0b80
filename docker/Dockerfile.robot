# syntax=docker/dockerfile:1
# lps-franka on a real Franka arm: ROS 2 Jazzy, franka_ros2 (v3, built from source),
# realsense2_camera, onnxruntime-gpu, pyrealsense2 and this workspace built with colcon.
#
#   docker build -f docker/Dockerfile.robot -t lps-franka-robot .      (from the repository root)
#   docker compose -f docker/compose.yaml run --rm robot               (real-time settings)
#
# Why Jazzy and not Humble: the project pins onnxruntime(-gpu) 1.31.1, which requires Python >= 3.11;
# Humble runs on Ubuntu 22.04's Python 3.10 and its apt rclpy cannot be used from another Python.
# `docker/runtime_requirements.py robot --python 3.10` shows the refusal. Jazzy (Ubuntu 24.04,
# Python 3.12, supported until 2029) takes the pins as they are; franka_ros2's jazzy line (v3.x)
# is built from source here because it has no binaries.

# The CUDA major of this image must match the one the pinned onnxruntime-gpu was built for (see
# onnxruntime's CUDA execution provider requirements); override with --build-arg when it moves.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
FROM ${CUDA_IMAGE}

ARG ROS_DISTRO=jazzy
# ros-infrastructure/ros-apt-source release that installs the ROS apt key and source list.
ARG ROS_APT_SOURCE_VERSION=1.1.0
# franka_ros2 release (Jazzy line, v3.2.0 or newer: launch/stacks.yaml refuses older ones) and
# the libfranka built with it. The pair goes together: v3.4.0's dependency.repos names libfranka
# 0.20.5 and its changelog requires >= 0.20.4; the build stops if LIBFRANKA_VERSION is below what
# the release's CHANGELOG.rst requires. The robot's system version must suit that libfranka
# (Franka's compatibility table). franka_description comes at the version dependency.repos names.
ARG FRANKA_ROS2_VERSION=v3.4.0
ARG LIBFRANKA_VERSION=0.20.5
ARG USER_UID=1000

ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    LC_ALL=C.UTF-8 \
    ROS_DISTRO=${ROS_DISTRO} \
    RMW_IMPLEMENTATION=rmw_fastrtps_cpp \
    ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST \
    PYTHONUNBUFFERED=1

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# ROS 2 apt repository.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl gnupg software-properties-common \
    && add-apt-repository -y universe \
    && curl -fsSL -o /tmp/ros2-apt-source.deb \
       "https://github.com/ros-infrastructure/ros-apt-source/releases/download/${ROS_APT_SOURCE_VERSION}/ros2-apt-source_${ROS_APT_SOURCE_VERSION}.$(. /etc/os-release && echo "${VERSION_CODENAME}")_all.deb" \
    && apt-get install -y --no-install-recommends /tmp/ros2-apt-source.deb \
    && rm -f /tmp/ros2-apt-source.deb \
    && rm -rf /var/lib/apt/lists/*

# ROS itself and everything the stack talks to. python3-numpy and python3-yaml are the apt side
# of docker/runtime_requirements.py: ROS's compiled message modules need the distribution numpy.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       build-essential cmake git python3-pip python3-colcon-common-extensions python3-rosdep \
       python3-vcstool python3-numpy python3-yaml \
       "ros-${ROS_DISTRO}-ros-base" \
       "ros-${ROS_DISTRO}-rmw-fastrtps-cpp" \
       "ros-${ROS_DISTRO}-rmw-cyclonedds-cpp" \
       "ros-${ROS_DISTRO}-ros2-control" \
       "ros-${ROS_DISTRO}-ros2-controllers" \
       "ros-${ROS_DISTRO}-joint-trajectory-controller" \
       "ros-${ROS_DISTRO}-realsense2-camera" \
       "ros-${ROS_DISTRO}-rosbag2-storage-mcap" \
       "ros-${ROS_DISTRO}-xacro" \
    && rm -rf /var/lib/apt/lists/* \
    && rosdep init \
    && rosdep update --rosdistro "${ROS_DISTRO}"

# franka_ros2 with LIBFRANKA_VERSION and the franka_description its release names, in /opt/franka.
WORKDIR /opt/franka
COPY docker/franka_pins.py /tmp/franka_pins.py
RUN git clone --depth 1 --branch "${FRANKA_ROS2_VERSION}" https://github.com/frankarobotics/franka_ros2.git src/franka_ros2 \
    && python3 /tmp/franka_pins.py "${LIBFRANKA_VERSION}" src/franka_ros2 \
    && vcs import src --recursive --skip-existing < src/franka_ros2/dependency.repos \
    && apt-get update \
    && rosdep install --from-paths src --ignore-src --rosdistro "${ROS_DISTRO}" -y \
    && rm -rf /var/lib/apt/lists/* \
    && source "/opt/ros/${ROS_DISTRO}/setup.bash" \
    && colcon build --merge-install --packages-up-to franka_bringup franka_gripper franka_robot_state_broadcaster \
       --cmake-args -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
    && rm -rf build log src

# Python packages that apt does not provide, at the versions the project pins. This block is
# written by docker/runtime_requirements.py and checked by tests/test_docker_lint.py; --no-deps
# so that nothing beyond the derived closure gets in.
# BEGIN runtime-requirements (docker/runtime_requirements.py robot --write; do not edit by hand)
RUN python3 -m pip install --no-cache-dir --no-deps --break-system-packages \
        flatbuffers==25.12.19 \
        onnxruntime-gpu==1.31.1 \
        packaging==26.3 \
        protobuf==7.36.2 \
        pyrealsense2==2.58.4.10922
# END runtime-requirements

# This workspace: interfaces and the steering runtime (the MuJoCo sim stays in the sim image).
WORKDIR /opt/lps
COPY ros2_ws/src ros2_ws/src
COPY config config
COPY models models
COPY launch launch
# Installed with the stack descriptions into lps_steering's share (the evaluator starts stacks with it).
COPY scripts/launch_stack.py scripts/launch_stack.py
COPY docker/entrypoint.sh /usr/local/bin/lps-entrypoint
RUN apt-get update \
    && rosdep install --from-paths ros2_ws/src --ignore-src --rosdistro "${ROS_DISTRO}" -y \
    && rm -rf /var/lib/apt/lists/* \
    && source "/opt/ros/${ROS_DISTRO}/setup.bash" \
    && source /opt/franka/install/setup.bash \
    && colcon --log-base ros2_ws/log build --base-paths ros2_ws/src --build-base ros2_ws/build \
       --install-base ros2_ws/install --cmake-args -DBUILD_TESTING=OFF \
    && rm -rf ros2_ws/build ros2_ws/log \
    && (userdel --remove ubuntu 2>/dev/null || true) \
    && useradd --create-home --uid "${USER_UID}" --groups video,plugdev lps \
    && chmod 0755 /usr/local/bin/lps-entrypoint

# Fail the build, not the first run on the robot, if the runtime cannot import or lacks CUDA, or
# if the real stack would refuse the franka_ros2 it was built with.
RUN lps-entrypoint python3 -c "import sys, numpy, onnxruntime, pyrealsense2, rclpy, yaml, lps_steering, lps_msgs.msg, franka_msgs.msg, lps_franka_hw.supervisor_node; \
sys.path.insert(0, '/opt/lps/launch'); import lps_stacks; \
inc = lps_stacks.load().stack('real').includes[0]; \
problem = lps_stacks.include_problem('real', inc.package, inc.requires, lps_stacks.installed_version(inc.package)); \
problem and sys.exit(problem); \
providers = onnxruntime.get_available_providers(); \
sys.exit(0 if 'CUDAExecutionProvider' in providers else f'onnxruntime has no CUDA provider: {providers}')"

USER ${USER_UID}
ENV ROS_HOME=/home/lps/.ros
ENTRYPOINT ["/usr/local/bin/lps-entrypoint"]
CMD ["bash"]

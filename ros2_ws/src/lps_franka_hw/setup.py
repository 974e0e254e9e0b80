from glob import glob

from setuptools import find_packages, setup

package_name = 'lps_franka_hw'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/config', glob('config/*.yaml')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='lps-franka maintainers',
    maintainer_email='maintainers@lps-franka.invalid',
    description='Real-Franka deployment pieces: gripper bridge, camera, perception, robot readiness and error recovery.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'gripper_bridge = lps_franka_hw.gripper_bridge:main',
            'realsense_node = lps_franka_hw.realsense_node:main',
            'object_perception = lps_franka_hw.perception_node:main',
            'franka_supervisor = lps_franka_hw.supervisor_node:main',
        ],
    },
)

from glob import glob

from setuptools import find_packages, setup

package_name = 'lps_steering'
# The stack descriptions and their runners live at the repository root (launch/, scripts/) and are
# installed here, so installed code (the evaluator) and `ros2 launch lps_steering <stack>.launch.py`
# find them through the package share, whatever the working directory.
repository = '../../..'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        # The shared-memory Fast DDS profile beside the node configs: an installed evaluator streaming
        # large camera frames finds it relative to its launch_stack.py, as a checkout's does.
        ('share/' + package_name + '/config', glob('config/*.yaml') + [repository + '/config/fastdds_localhost.xml']),
        ('share/' + package_name + '/launch',
         sorted(glob(repository + '/launch/*.py') + glob(repository + '/launch/*.yaml'))
         + [repository + '/scripts/launch_stack.py']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='lps-franka maintainers',
    maintainer_email='maintainers@lps-franka.invalid',
    description='Latent policy steering runtime core and policy node.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'policy_node = lps_steering.nodes.policy_node:main',
            'fake_robot = lps_steering.nodes.fake_robot:main',
            'evaluator = lps_steering.nodes.evaluator_node:main',
        ],
    },
)

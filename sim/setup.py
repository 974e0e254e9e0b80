from glob import glob

from setuptools import find_packages, setup

package_name = 'lps_sim'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    package_data={package_name: ['profiles/*.yaml', 'assets/**/*']},
    include_package_data=True,
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/config', glob('config/*.yaml')),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='lps-franka maintainers',
    maintainer_email='maintainers@lps-franka.invalid',
    description='MuJoCo Franka sim for lps-franka.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'sim_bridge = lps_sim.bridge_node:main',
        ],
    },
)

"""The package list lives here only because of one mapping pyproject.toml cannot express next to a
find: the device profiles are a top-level folder (devices/) that installs as edgeprune/devices/."""
from setuptools import find_packages, setup

setup(packages=find_packages(include=["edgeprune*"]) + ["edgeprune.devices", "edgeprune.devices.cores"],
      package_dir={"edgeprune.devices": "devices", "edgeprune.devices.cores": "devices/cores"})

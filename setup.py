"""pip install of the pure-Python part (model, inference, training, CLI); colcon builds with CMake."""
from setuptools import setup

setup()

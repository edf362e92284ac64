"""The public import path of :class:`Instances`: it lives in :mod:`yolact_ros.inference.instances`."""
from .inference.instances import Instances

__all__ = ["Instances"]

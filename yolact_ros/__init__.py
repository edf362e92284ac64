"""yolact_ros: YOLACT / YOLACT++ instance segmentation for ROS 2.

Kept free of imports on purpose: rosidl generates ``yolact_ros.msg`` into the same
package directory, and extending ``__path__`` lets a source checkout and an
installed copy (which has ``msg``) be imported side by side.
"""

__path__ = __import__("pkgutil").extend_path(__path__, __name__)
__version__ = "0.1.0"

"""Launch yolact_node (YOLACT / YOLACT++ instance segmentation).

    ros2 launch yolact_ros segment.launch.py weights:=/path/to/yolact_plus_resnet50_54_800000.pth \
        image:=/camera/image_raw

Outputs (default namespace /yolact): detections, masks, visualization; /diagnostics.
Works on Humble and Jazzy (launch, launch_ros only).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description():
    share = get_package_share_directory("yolact_ros")
    default_params = os.path.join(share, "config", "yolact.yaml")

    image = LaunchConfiguration("image")
    args = [
        DeclareLaunchArgument("weights", description="Path to the .pth weights file (required)."),
        DeclareLaunchArgument("config", default_value="",
                              description="Model config name; empty = from the checkpoint / file name."),
        DeclareLaunchArgument("image", default_value="/camera/image_raw",
                              description="Input image topic (raw); the compressed input is <image>/compressed."),
        DeclareLaunchArgument("namespace", default_value="yolact",
                              description="Namespace of the node and its outputs."),
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="Parameter file (defaults: the shipped config/yolact.yaml)."),
        DeclareLaunchArgument("device", default_value="auto", description="auto | cpu | cuda | cuda:N"),
        DeclareLaunchArgument("image_transport", default_value="raw", description="raw | compressed"),
    ]

    node = Node(
        package="yolact_ros",
        executable="yolact_node",
        name="yolact_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            # value_type=str: an empty `config` must stay "" (launch would parse it as YAML null)
            {name: ParameterValue(LaunchConfiguration(name), value_type=str)
             for name in ("weights", "config", "device", "image_transport")},
        ],
        remappings=[
            ("image", image),
            ("image/compressed", [image, "/compressed"]),
        ],
    )
    return LaunchDescription(args + [node])

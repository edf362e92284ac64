"""Launch yolact_node (YOLACT / YOLACT++ instance segmentation).

    ros2 launch yolact_ros segment.launch.py weights:=/path/to/yolact_plus_resnet50_54_800000.pth \
        image:=/camera/image_raw
    ros2 launch yolact_ros segment.launch.py params_file:=/path/to/my.yaml   # the file sets weights
    ros2 launch yolact_ros segment.launch.py weights:=/w.pth cameras:="[front, left]" \
        camera_images:="{front: /cam_front/image_raw, left: /cam_left/image_raw}"   # one model, two cameras

Only the arguments you give are passed to the node, after the params file: a params file is
never overridden by an argument you did not give. The arguments, and what is passed, are
defined in yolact_ros/ros/launch_args.py (`ros2 launch yolact_ros segment.launch.py -s` lists
them). Outputs (default namespace /yolact): detections, masks, visualization; /diagnostics.
When the node exits, launch shuts down; if it failed (non-zero exit code, e.g. bad weights
with autostart), `ros2 launch` reports why and exits non-zero too.
Tested with Jazzy and Kilted; uses launch and launch_ros only.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from yolact_ros.ros.launch_args import (
    LAUNCH_ARGUMENTS, NODE_NAME, given_arguments, image_remappings, node_exit_failure, node_parameters,
    ros_arguments,
)


def generate_launch_description():
    share = get_package_share_directory("yolact_ros")
    defaults = {"params_file": os.path.join(share, "config", "yolact.yaml")}
    given = {}

    def remember_given(context):
        # Runs before the declarations below set the defaults of the arguments not given.
        given.clear()
        given.update(given_arguments(context.launch_configurations))

    def start_node(context):
        config = context.launch_configurations
        parameters = [
            # value_type=str: a string stays a string ('' would otherwise be parsed as YAML null)
            {name: ParameterValue(value, value_type=str) if isinstance(value, str) else value
             for name, value in item.items()} if isinstance(item, dict) else item
            for item in node_parameters(given, config["params_file"])
        ]
        node = Node(
            package="yolact_ros",
            executable="yolact_node",
            name=NODE_NAME,
            namespace=config["namespace"],
            output="screen",
            emulate_tty=True,
            parameters=parameters,
            ros_arguments=ros_arguments(given) or None,  # e.g. ['--log-level', 'debug']
            remappings=image_remappings(config["image"], given.get("cameras"), config["camera_images"]),
        )
        return [node, RegisterEventHandler(OnProcessExit(target_action=node, on_exit=node_exited))]

    def node_exited(event, context):
        failure = node_exit_failure(event.returncode)
        if failure:
            # launch logs an exception raised here and makes `ros2 launch` exit with code 1
            raise RuntimeError(failure)
        return [EmitEvent(event=Shutdown(reason=f"{NODE_NAME} exited"))]

    declarations = [
        DeclareLaunchArgument(arg.name, default_value=defaults.get(arg.name, arg.default),
                              description=arg.description)
        for arg in LAUNCH_ARGUMENTS
    ]
    return LaunchDescription([
        OpaqueFunction(function=remember_given),
        *declarations,
        OpaqueFunction(function=start_node),
    ])

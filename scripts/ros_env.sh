# Source me (bash): the environment to run yolact_ros from this repository's workspace.
#   bash scripts/build_ws.sh && source scripts/ros_env.sh
# Sets up: the ROS 2 Jazzy wheels in .venv as underlay (AMENT_PREFIX_PATH), the built
# workspace (install/setup.bash), discovery limited to this host, a per-shell ROS_DOMAIN_ID
# (concurrent test runs do not see each other), a writable ROS_LOG_DIR and the Fast DDS
# shared-memory profile for images (config/fastdds_shm.xml).
# Respected if already set: ROS_DOMAIN_ID, ROS_LOG_DIR, FAST{RTPS,DDS}_DEFAULT_PROFILES_FILE,
# YOLACT_ROS_VENV (default: <repo>/.venv), YOLACT_ROS_DISTRO (jazzy, the default, or kilted:
# its own .venv-kilted and install-kilted/, see scripts/distro.sh).

_yr_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
ROOT="$_yr_root" source "$_yr_root/scripts/distro.sh" || return 1
_yr_venv="$YR_VENV"

if [ -x "$_yr_venv/bin/python" ]; then
  case ":${PATH}:" in *":$_yr_venv/bin:"*) ;; *) export PATH="$_yr_venv/bin:$PATH" ;; esac
  export VIRTUAL_ENV="$_yr_venv"
  case ":${AMENT_PREFIX_PATH:-}:" in
    *":$_yr_venv:"*) ;;
    *) export AMENT_PREFIX_PATH="$_yr_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;;
  esac
else
  echo "ros_env.sh: no interpreter at $_yr_venv (run scripts/setup_env.sh --ros)" >&2
fi

# REQUIRED here: the default discovery multicasts on the network interface.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
# Isolate concurrent runs (other shells, CI jobs): a domain per shell unless one is set.
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( $$ % 100 + 1 ))}"
export ROS_LOG_DIR="${ROS_LOG_DIR:-$_yr_root/.ros_log}"
mkdir -p "$ROS_LOG_DIR" 2>/dev/null || true
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
# Large shared-memory segments: without them best-effort images are mostly lost. The variable's
# name depends on the Fast DDS version (scripts/distro.sh).
if [ -z "${!YR_FASTDDS_PROFILES_VAR:-}" ]; then
  export "$YR_FASTDDS_PROFILES_VAR=$_yr_root/config/fastdds_shm.xml"
fi

if [ -f "$YR_INSTALL/setup.bash" ]; then
  # colcon's setup scripts are not written for `set -u` shells.
  case $- in *u*) _yr_nounset=1; set +u ;; *) _yr_nounset=0 ;; esac
  # shellcheck disable=SC1091
  source "$YR_INSTALL/setup.bash"
  [ "$_yr_nounset" = 1 ] && set -u
  unset _yr_nounset
else
  echo "ros_env.sh: $YR_INSTALL/setup.bash not found (run: bash scripts/build_ws.sh)" >&2
fi
export YOLACT_ROS_WS="$_yr_root"
export YOLACT_ROS_DISTRO="$YR_DISTRO"
unset _yr_root _yr_venv YR_DISTRO YR_VENV YR_BUILD YR_INSTALL YR_LOG YR_ROS_REQUIREMENTS YR_FASTDDS_PROFILES_VAR

# Sourced by the other scripts: which ROS 2 distribution, and where its environment lives.
#   YOLACT_ROS_DISTRO=jazzy (default) | kilted
# Each distribution has its own interpreter and workspace, so their ROS packages never mix:
#   jazzy:  .venv          build/         install/         log/
#   kilted: .venv-kilted   build-kilted/  install-kilted/  log-kilted/
# YOLACT_ROS_VENV overrides the interpreter's folder.
YR_DISTRO="${YOLACT_ROS_DISTRO:-jazzy}"
# YR_FASTDDS_PROFILES_VAR: the variable naming a Fast DDS XML profile file, which Fast DDS 2.x
# (Jazzy) reads as FASTRTPS_DEFAULT_PROFILES_FILE and Fast DDS 3.x (Kilted) as
# FASTDDS_DEFAULT_PROFILES_FILE (it still reads the old name, with a deprecation warning).
case "$YR_DISTRO" in
  jazzy) _yr_sfx="" ; YR_ROS_REQUIREMENTS="$ROOT/requirements-ros.txt"
    YR_FASTDDS_PROFILES_VAR=FASTRTPS_DEFAULT_PROFILES_FILE ;;
  kilted) _yr_sfx="-kilted" ; YR_ROS_REQUIREMENTS="$ROOT/requirements-ros-kilted.txt"
    YR_FASTDDS_PROFILES_VAR=FASTDDS_DEFAULT_PROFILES_FILE ;;
  *) echo "YOLACT_ROS_DISTRO=$YR_DISTRO: tested distributions are jazzy and kilted" >&2; return 1 2>/dev/null || exit 1 ;;
esac
YR_VENV="${YOLACT_ROS_VENV:-$ROOT/.venv$_yr_sfx}"
YR_BUILD="$ROOT/build$_yr_sfx"
YR_INSTALL="$ROOT/install$_yr_sfx"
YR_LOG="$ROOT/log$_yr_sfx"
unset _yr_sfx

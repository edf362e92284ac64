"""``python -m yolact_ros.cli`` = the ``yolact`` command."""

from . import main

raise SystemExit(main())

"""The bundle's entry point: PyInstaller freezes this script, which runs racker's CLI.

``racker install-on-host`` is the installer image's ENTRYPOINT (packaging/Containerfile); it is
dispatched here, before the CLI loads, until it becomes one of the CLI's commands.
"""

import sys

if sys.argv[1:2] == ["install-on-host"]:
    from racker.release.image_entry import main as install_on_host

    sys.exit(install_on_host(sys.argv[2:]))

from racker.cli import main

main()

"""The bundle's entry point: PyInstaller freezes this script, which runs racker's CLI."""

from racker.cli import main

main()

"""Run the command line as `python -m sqlops`."""

from sqlops.cli.app import main

main()

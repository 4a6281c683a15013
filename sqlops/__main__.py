"""Run the command line as `python -m sqlops`."""

from sqlops.cli.app import main

if __name__ == "__main__":  # a process a parallel load spawns imports this module too
    main()

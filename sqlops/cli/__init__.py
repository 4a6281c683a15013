"""The command line: parse options, call the core, render results."""

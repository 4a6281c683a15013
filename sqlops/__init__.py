"""sqlops: SQL-first data transformations with tests next to the code."""

__version__ = "0.1.0"

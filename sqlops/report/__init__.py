"""Run history and DataOps metrics, read from the history tables in the state schema."""

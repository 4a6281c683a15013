"""The executor: runs a plan in DAG order, asserts, and promotes."""

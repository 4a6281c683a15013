"""The DAG of nodes, selectors over it, and fingerprints."""

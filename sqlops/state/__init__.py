"""State in the target database: versions, environments and deployments, in `sqlops_meta`."""

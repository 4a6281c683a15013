"""What to build, what to reuse, what to promote."""

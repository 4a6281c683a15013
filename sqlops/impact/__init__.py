"""Impact analysis: what lies downstream of a change, and the assertions that cover it."""

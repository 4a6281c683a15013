"""Loading a project: files, sqlops.toml, Jinja, directives and SQL into nodes."""

"""The assertion language: parse a check, compile it to one SQL query."""

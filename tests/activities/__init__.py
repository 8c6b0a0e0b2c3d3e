"""Tool activities against the sandbox and PostgreSQL, outside any workflow."""

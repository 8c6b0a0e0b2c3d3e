"""The `autobiz` command line."""

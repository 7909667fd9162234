"""The `kibitz` command line."""

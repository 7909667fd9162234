"""Typed records, configuration, registries and errors shared by every stage."""

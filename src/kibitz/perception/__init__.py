"""Perception: from a Frame to an Observation."""

"""Temporal tracking over continuous observations and debounced event detection."""

"""Embedded models: a catalogue of pinned packages and hashes, an installer and a verifier."""

"""Where the companion's events and lines go: the terminal, JSON lines, a session log."""

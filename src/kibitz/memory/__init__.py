"""Long-term memory: what kibitz keeps about each player, per game, on this machine only."""

"""`kibitz serve`: the companion in a browser — a web app, an OBS overlay, and a WebSocket API for game mods."""

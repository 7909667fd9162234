"""kibitz: an open-source AI game companion that watches the screen and talks with you, locally."""

__version__ = "0.1.0"

"""Errors a user can hit: each carries one sentence saying what went wrong and what to do."""


class KibitzError(Exception):
    """A problem the user can fix; the CLI prints its message without a traceback and exits non-zero."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(KibitzError):
    """The configuration file or a command-line option is wrong."""


class UnknownNameError(KibitzError):
    """A name (game, source, backend, persona...) that no registry knows."""


class ModelError(KibitzError):
    """A model file is missing, corrupt or cannot be loaded."""


class SourceError(KibitzError):
    """A frame source cannot start or cannot deliver frames."""


class BackendError(KibitzError):
    """An LLM backend cannot be reached or answered with an error."""

"""PrefLab's error hierarchy: a leaf module every layer may import."""


class PrefLabError(Exception):
    """A problem the user can act on; the CLI prints it as one line and exits 2."""


class UserInputError(PrefLabError):
    """Bad flags, files or names supplied by the user."""


class StoreError(PrefLabError):
    """The database cannot be opened or used as asked."""


class StoreLockedError(StoreError):
    """Another process holds the DuckDB file."""


class MigrationError(StoreError):
    """An applied migration differs from the file on disk, or a migration failed."""


class ModelError(PrefLabError):
    """A model variant cannot be resolved, loaded or run."""


class JudgeError(PrefLabError):
    """The judge could not return a verdict."""


class PermissionDeniedError(PrefLabError):
    """The logged-in user's role does not allow the action."""

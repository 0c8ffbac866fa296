"""User-facing errors: each names what is wrong and where, never a deep traceback."""


class LabelpipeError(Exception):
    """Base class for errors shown to the user as one clear message."""


class InputError(LabelpipeError):
    """Bad input data: names the file, the row (1-based, as a user counts them) and the field."""

    def __init__(self, file: str, message: str, row: int | None = None, field: str | None = None):
        self.file, self.row, self.field = str(file), row, field
        where = [f"file {self.file}"]
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{', '.join(where)}: {message}")


class ConfigError(LabelpipeError):
    """Invalid run configuration."""

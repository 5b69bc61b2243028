"""Exception types whose messages are meant for the user, one clear line each."""


class NpcError(Exception):
    """Base class: the CLI prints ``str(err)`` (plus ``err.hint``) instead of a traceback."""

    hint: str | None = None

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


class CohortError(NpcError):
    """A cohort directory, table or DICOM series violates the data contract."""


class DicomError(CohortError):
    """A DICOM file or series cannot be read or fails a geometry check."""


class WriteFailed(NpcError):
    """A file could not be written (a full disk, a quota, a read-only or failing device)."""

"""Errors the engine reports to people as one readable line."""


class DcaError(Exception):
    """A user-facing failure (bad input, invalid model, unwritable output); its message is one line."""


class PackageError(DcaError):
    """A model package that is missing, corrupt or inconsistent."""


class InputError(DcaError):
    """An input image, label or dataset folder that cannot be used."""

"""The one error the validators raise for a file that can't be used at all."""

from __future__ import annotations


class InputError(Exception):
    """A file can't be used at all (unreadable, empty, missing required columns).

    ``str(error)`` is one line, ``"<file>: <problem>"``. The problem names
    columns and file structure only: never a cell value or a patient
    identifier, so the message is safe to log and to print.
    """

    def __init__(self, file: str, problem: str) -> None:
        super().__init__(f"{file}: {problem}")
        self.file = file
        self.problem = problem

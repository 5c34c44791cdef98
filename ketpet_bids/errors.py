"""Errors the command line turns into exit codes.

``InputError`` is raised for bad usage or bad input (exit code 2). Its message always names
the offending file (or option) and the problem, and suggests a fix, on one line.
"""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad usage or bad input: exit code 2, one-line message, no traceback.

    Parameters
    ----------
    where
        The file (or command-line option) at fault, e.g. ``sub-01_pet.json``.
    problem
        What is wrong, naming the field, e.g. ``"FrameDuration has 30 entries but the image
        has 31 frames"``.
    hint
        How to fix it (optional).
    """

    def __init__(self, where: str | Path, problem: str, hint: str = "") -> None:
        self.where = str(where)
        self.problem = problem
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """The message printed to the user, on a single line."""
        text = f"{self.where}: {self.problem}"
        if self.hint:
            text += f" (fix: {self.hint})"
        return " ".join(text.split())


class ProcessingError(Exception):
    """A processing step failed (exit code 1); the message names the step and crash file."""

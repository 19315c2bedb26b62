"""Classroom exercises: checkers that test a student's own code and say what is wrong.

Each exercise notebook in `notebooks/exercises/` asks the student to write one piece of the
Mixer; a checker from this package then runs the student's code on several inputs, compares it
with the package's reference and with properties the piece must have, prints one line per check
(a tick, or a cross with a hint that names the mistake) and returns True or False.
"""

from .drop_path import check_drop_path
from .mixer_block import check_mixer_block
from .patchify import check_patchify
from .token_mixing import check_token_mixing

__all__ = [
    "check_drop_path",
    "check_mixer_block",
    "check_patchify",
    "check_token_mixing",
]

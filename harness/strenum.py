"""``enum.StrEnum`` on Python 3.10 too: members are strings equal to, printed as and written to JSON as
their values, so a vocabulary (statuses, modes) is one enum that still compares with plain text."""
from __future__ import annotations

import enum
import sys

if sys.version_info >= (3, 11):
    StrEnum = enum.StrEnum
else:
    class StrEnum(str, enum.Enum):
        def __str__(self) -> str:
            return self.value

"""Small internal helpers shared by several subpackages."""

from ._markdown import write_section

__all__ = ["write_section"]

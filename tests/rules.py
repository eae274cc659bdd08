"""Which rule of ``lenet_utils.arithmetic.RULES`` an error message states (shared by the
arithmetic tests and the calculator's browser tests, which must agree on it)."""

import re

from lenet_utils import arithmetic as ar


def rule_of(message: str) -> str:
    """The name of the ``ar.RULES`` template ``message`` was made from."""
    for rule, template in ar.RULES.items():
        parts = re.split(r"\{\w+\}", template)
        if re.fullmatch(".+?".join(map(re.escape, parts)), message):
            return rule
    raise AssertionError(f"not from a rule: {message}")

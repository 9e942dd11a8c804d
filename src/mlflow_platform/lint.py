"""cfn-lint, the field's own CloudFormation linter, over every template this project produces.

Zero errors and zero warnings is the bar. IGNORED lists each rule the project switches off, with
the reason; it is empty because nothing has needed it. Beyond errors and warnings, the one
informational rule that matters here is on: I3011, a stateful resource without explicit
deletion and replacement policies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cfnlint.api import ManualArgs, lint

# Regions the templates are checked against: resource and property availability differ.
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")
IGNORED: Mapping[str, str] = {}


@dataclass(frozen=True, kw_only=True)
class LintFinding:
    source: str
    rule: str
    message: str
    line: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.rule} {self.message}"


def lint_template(text: str, *, source: str) -> list[LintFinding]:
    """Every cfn-lint error and warning (and I3011) in one template's text."""
    matches = lint(
        text,
        config=ManualArgs(
            regions=list(REGIONS),
            ignore_checks=list(IGNORED),
            include_checks=["I3011"],
        ),
    )
    return [
        LintFinding(source=source, rule=m.rule.id, message=m.message, line=m.linenumber)
        for m in matches
    ]

"""Template inputs, declared once as CloudFormation parameters.

Every other form of an input (the Proton schema, the Proton Jinja binding, the Service Catalog
parameter) is derived from the parameter declared here, so an input is never written twice.
CloudFormation refuses a bad value before it creates anything: constraints on each parameter,
template Rules for constraints that span two parameters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from constructs import Construct

_RULE_ID = re.compile(r"[^A-Za-z0-9]")
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
VPC_PREFIXES = range(16, 23)
CIDR_PATTERN = rf"^{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}/(1[6-9]|2[0-2])$"
ENVIRONMENT_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9-]{0,31}$"
# A DNS name of two labels or more, lowercase: what a certificate names and a client verifies.
HOST_NAME = r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?"
HOST_NAME_MAX = 253
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
)  # fmt: skip


def string_input(
    scope: cdk.Stack,
    name: str,
    *,
    default: str,
    description: str,
    allowed_values: Sequence[str] | None = None,
    allowed_pattern: str | None = None,
    constraint_description: str | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
) -> cdk.CfnParameter:
    """A String parameter; a pattern must say in words what it accepts.

    Declared on the stack itself so that its logical id is exactly `name`.
    """
    if allowed_pattern and not constraint_description:
        raise ValueError(f"input {name}: a pattern needs a constraint description")
    return cdk.CfnParameter(
        scope,
        name,
        type="String",
        default=default,
        description=description,
        allowed_values=list(allowed_values) if allowed_values else None,
        allowed_pattern=allowed_pattern,
        constraint_description=constraint_description,
        min_length=min_length,
        max_length=max_length,
    )


def number_input(
    scope: cdk.Stack,
    name: str,
    *,
    default: float,
    description: str,
    allowed_values: Sequence[float] | None = None,
    min_value: float | None = None,
    max_value: float | None = None,
) -> cdk.CfnParameter:
    """A Number parameter bounded by a range or an enumeration."""
    if allowed_values is None and (min_value is None or max_value is None):
        raise ValueError(f"input {name}: a number needs allowed values or both bounds")
    allowed = [format_number(v) for v in allowed_values] if allowed_values else None
    if allowed is not None and format_number(default) not in allowed:
        raise ValueError(f"input {name}: default {default} is not among {allowed}")
    return cdk.CfnParameter(
        scope,
        name,
        type="Number",
        default=format_number(default),
        description=description,
        allowed_values=allowed,
        min_value=min_value,
        max_value=max_value,
    )


def format_number(value: float) -> str:
    """Numbers as CloudFormation compares them: 2 not 2.0, 0.5 as is."""
    return str(int(value)) if float(value).is_integer() else str(value)


def require_pairs(
    scope: Construct,
    rule_id: str,
    *,
    key: cdk.CfnParameter,
    dependent: cdk.CfnParameter,
    allowed: Mapping[str, Sequence[str]],
    description: str,
) -> None:
    """One Rule per key value: the dependent input must be one of the values allowed with it.

    A key declared as a range rather than an enumeration also gets a rule that it is one of the
    keys: linters pair every enumerated value with the other input's default, which would flag
    combinations that these rules already refuse.
    """
    key_name, key_value_token = key.node.id, key.value_as_string
    dependent_name, dependent_value_token = dependent.node.id, dependent.value_as_string
    if not key.allowed_values:
        cdk.CfnRule(
            scope,
            f"{rule_id}Choice",
            assertions=[
                cdk.CfnRuleAssertion(
                    assert_=cdk.Fn.condition_contains(list(allowed), key_value_token),
                    assert_description=f"{key_name} must be one of {', '.join(allowed)}",
                )
            ],
        )
    for key_value, dependent_values in allowed.items():
        cdk.CfnRule(
            scope,
            f"{rule_id}{_RULE_ID.sub('x', key_value)}",
            rule_condition=cdk.Fn.condition_equals(key_value_token, key_value),
            assertions=[
                cdk.CfnRuleAssertion(
                    assert_=cdk.Fn.condition_contains(
                        list(dependent_values), dependent_value_token
                    ),
                    assert_description=description.format(
                        key=key_name,
                        key_value=key_value,
                        dependent=dependent_name,
                        allowed=", ".join(dependent_values),
                    ),
                )
            ],
        )


def require_at_most(
    scope: Construct,
    rule_id: str,
    *,
    lower: cdk.CfnParameter,
    upper: cdk.CfnParameter,
) -> None:
    """lower <= upper, for two enumerated Number inputs."""
    lower_values = _allowed(lower)
    upper_values = _allowed(upper)
    allowed = {
        value: [u for u in upper_values if float(u) >= float(value)] for value in lower_values
    }
    require_pairs(
        scope,
        rule_id,
        key=lower,
        dependent=upper,
        # A lower value that every upper value satisfies needs no rule.
        allowed={k: v for k, v in allowed.items() if len(v) < len(upper_values)},
        description="{dependent} must be at least {key} ({key_value}): one of {allowed}",
    )


def _allowed(parameter: cdk.CfnParameter) -> list[str]:
    values = parameter.allowed_values
    if not values:
        raise ValueError(f"input {parameter.node.id}: a cross-input rule needs allowed values")
    return list(values)


INTERFACE = "AWS::CloudFormation::Interface"


def interface(
    stack: cdk.Stack, groups: Sequence[tuple[str, Sequence[tuple[cdk.CfnParameter, str]]]]
) -> None:
    """Console groups and labels (`AWS::CloudFormation::Interface`), in the order given.

    Every input is in exactly one group with a label; the Proton schema takes the same labels
    as its properties' titles, so both channels name an input alike.
    """
    declared = {p.logical_id for p in stack.node.children if isinstance(p, cdk.CfnParameter)}
    listed = [parameter.logical_id for _, members in groups for parameter, _ in members]
    if sorted(listed) != sorted(declared):
        raise ValueError(
            f"{stack.node.id}: the console groups must list each input once; missing "
            f"{sorted(declared - set(listed))}, repeated "
            f"{sorted({n for n in listed if listed.count(n) > 1})}"
        )
    stack.add_metadata(
        INTERFACE,
        {
            "ParameterGroups": [
                {
                    "Label": {"default": title},
                    "Parameters": [parameter.logical_id for parameter, _ in members],
                }
                for title, members in groups
            ],
            "ParameterLabels": {
                parameter.logical_id: {"default": label}
                for _, members in groups
                for parameter, label in members
            },
        },
    )


def environment_name_input(stack: cdk.Stack, *, description: str) -> cdk.CfnParameter:
    return string_input(
        stack,
        "EnvironmentName",
        default="mlflow",
        description=description,
        allowed_pattern=ENVIRONMENT_NAME_PATTERN,
        constraint_description="a letter, then up to 31 letters, digits or hyphens",
    )


def vpc_cidr_input(stack: cdk.Stack, *, default: str, vpc: str) -> cdk.CfnParameter:
    return string_input(
        stack,
        "VpcCidr",
        default=default,
        description=f"IPv4 range of {vpc}, a /16 to /22 block; it is split into eight equal "
        "subnets of which six are used",
        allowed_pattern=CIDR_PATTERN,
        constraint_description="an IPv4 CIDR block with a prefix length from 16 to 22, "
        "such as 10.0.0.0/16",
    )


def log_retention_input(stack: cdk.Stack, *, what: str) -> cdk.CfnParameter:
    return number_input(
        stack,
        "LogRetentionDays",
        default=90,
        description=f"Days to keep {what}",
        allowed_values=LOG_RETENTION_DAYS,
    )


def nat_gateways_input(
    stack: cdk.Stack, *, traffic: str, without_nat: str | None = None
) -> cdk.CfnParameter:
    """1 or 2; with `without_nat` (what serves the traffic instead), 0 is allowed too."""
    zero = f"0 gives the VPC no internet egress at all ({without_nat}), " if without_nat else ""
    return number_input(
        stack,
        "NatGateways",
        default=1,
        description=f"NAT gateways for {traffic}: {zero}1 is cheaper, 2 survives the loss of "
        "an Availability Zone",
        allowed_values=(0, 1, 2) if without_nat else (1, 2),
    )

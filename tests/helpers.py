from __future__ import annotations


def of_type(template: dict, type_name: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_name}


def one_of_type(template: dict, type_name: str) -> tuple[str, dict]:
    found = of_type(template, type_name)
    assert len(found) == 1, f"expected one {type_name}, found {sorted(found)}"
    return next(iter(found.items()))


def references(node: object) -> set[str]:
    """Logical ids a node refers to by Ref or GetAtt."""
    found = set()
    for value in _walk(node):
        if isinstance(value, dict):
            if "Ref" in value:
                found.add(value["Ref"])
            if "Fn::GetAtt" in value:
                found.add(value["Fn::GetAtt"][0])
    return found


def _walk(node: object):
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def policy_statements(template: dict) -> list[dict]:
    statements = []
    for resource in of_type(template, "AWS::IAM::Policy").values():
        statements += resource["Properties"]["PolicyDocument"]["Statement"]
    for resource in of_type(template, "AWS::IAM::Role").values():
        for policy in resource["Properties"].get("Policies", []):
            statements += policy["PolicyDocument"]["Statement"]
    return statements


def as_list(value: object) -> list:
    return value if isinstance(value, list) else [value]

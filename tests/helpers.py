from __future__ import annotations


def of_type(template: dict, type_name: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_name}


def one_of_type(template: dict, type_name: str) -> tuple[str, dict]:
    found = of_type(template, type_name)
    assert len(found) == 1, f"expected one {type_name}, found {sorted(found)}"
    return next(iter(found.items()))


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


def create_mlflow_user(details: dict, username: str, password: str) -> None:
    """A user made by the admin through MLflow's API: not an admin, no grants."""
    import requests

    response = requests.post(
        f"{details['tracking_uri']}/api/2.0/mlflow/users/create",
        json={"username": username, "password": password},
        auth=(details["username"], details["password"]),
        timeout=30,
    )
    assert response.status_code == 200, response.text


def task_container(template: dict, name: str = "tracking-server") -> dict:
    """One container of the tracking task by name: the server (default) or its init container."""
    _, task = one_of_type(template, "AWS::ECS::TaskDefinition")
    [container] = [c for c in task["Properties"]["ContainerDefinitions"] if c["Name"] == name]
    return container

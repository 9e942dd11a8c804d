"""A small evaluator of CloudFormation intrinsic functions and template Rules, for tests.

It lets tests ask what a template does with given inputs (which subnets it lays out, which
repository it grants, whether its Rules accept the inputs) instead of matching its text.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field


class Unresolved(Exception):
    pass


@dataclass
class Evaluator:
    template: dict
    parameters: dict[str, str] = field(default_factory=dict)
    region: str = "eu-west-1"
    account: str = "123456789012"

    def __post_init__(self) -> None:
        values = {
            name: str(spec.get("Default", ""))
            for name, spec in self.template.get("Parameters", {}).items()
        }
        values.update(self.parameters)
        self.values = values

    def condition(self, name: str) -> bool:
        return bool(self.eval(self.template["Conditions"][name]))

    def eval(self, node: object) -> object:
        if isinstance(node, list):
            return [self.eval(v) for v in node]
        if not isinstance(node, dict):
            return node
        if len(node) != 1 or not next(iter(node)).startswith(("Fn::", "Ref", "Condition")):
            return {k: self.eval(v) for k, v in node.items()}
        [(key, arg)] = node.items()
        match key:
            case "Ref":
                pseudo = {
                    "AWS::Region": self.region,
                    "AWS::AccountId": self.account,
                    "AWS::Partition": "aws",
                    "AWS::URLSuffix": "amazonaws.com",
                }
                if arg in pseudo:
                    return pseudo[arg]
                if arg == "AWS::NoValue":
                    return {"Ref": arg}  # the property is left out
                if arg in self.values:
                    return self.values[arg]
                if arg in self.template["Resources"]:
                    return {"Ref": arg}  # a resource stays symbolic
                raise Unresolved(f"Ref {arg}")
            case "Fn::Sub" if isinstance(arg, str):
                return re.sub(r"\$\{([^}!]+)\}", lambda m: str(self.eval({"Ref": m[1]})), arg)
            case "Fn::GetAtt":
                return f"<{arg[0]}.{arg[1]}>"  # resource attributes stay symbolic
            case "Fn::If":
                name, yes, no = arg
                return self.eval(yes if self.condition(name) else no)
            case "Fn::Equals":
                a, b = self.eval(arg)
                return str(a) == str(b)
            case "Fn::Not":
                return not self.eval(arg[0])
            case "Fn::And":
                return all(self.eval(arg))
            case "Fn::Or":
                return any(self.eval(arg))
            case "Condition":
                return self.condition(arg)
            case "Fn::Contains":
                values, value = self.eval(arg)
                return str(value) in [str(v) for v in values]
            case "Fn::Select":
                index, values = self.eval(arg)
                return values[int(index)]
            case "Fn::Split":
                delimiter, value = self.eval(arg)
                return str(value).split(delimiter)
            case "Fn::Join":
                delimiter, values = self.eval(arg)
                return delimiter.join(str(v) for v in values)
            case "Fn::FindInMap":
                mapping, top, second = self.eval(arg)
                return self.template["Mappings"][mapping][top][second]
            case "Fn::GetAZs":
                return [f"{self.region}{s}" for s in "abc"]
            case "Fn::Cidr":
                block, count, bits = self.eval(arg)
                network = ipaddress.ip_network(block)
                subnets = network.subnets(new_prefix=32 - int(bits))
                return [str(next(subnets)) for _ in range(int(count))]
            case _:
                raise Unresolved(key)

    def failed_rules(self) -> list[str]:
        """The assertion descriptions of every Rule these inputs break."""
        failed = []
        for rule in self.template.get("Rules", {}).values():
            condition = rule.get("RuleCondition")
            if condition is not None and not self.eval(condition):
                continue
            failed += [
                a["AssertDescription"] for a in rule["Assertions"] if not self.eval(a["Assert"])
            ]
        return failed

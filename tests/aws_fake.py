"""Proton and Service Catalog as state machines behind real boto3 clients.

No AWS account is reachable and moto has no Proton and only part of Service Catalog, so these
answer the clients' calls in botocore's `before-call` event, exactly where botocore's Stubber
answers. The clients still validate every request against the service model, and every answer
here is validated against the operation's output shape (as Stubber does), so a request or an
answer the real API would not accept fails the test.

`fail(operation, code)` makes the next call of an operation fail before it changes anything,
which is how the tests interrupt a publication at each step. Bundles and templates are read
from the S3 server (moto) the way the services read them.
"""

from __future__ import annotations

import datetime
import functools
import io
import itertools
import json
import re
import tarfile
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import botocore.awsrequest
import botocore.validate
import proton_bundle_rules
import yaml

NOW = datetime.datetime(2026, 11, 26, tzinfo=datetime.UTC)
ACCOUNT = "123456789012"


class ApiError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass
class Failure:
    code: str
    message: str
    times: int


@dataclass
class FakeAws:
    """Holds both services' state; `attach(client)` routes a client's calls here."""

    s3: object
    """A boto3 S3 client of the moto server, used to read what Proton would read."""
    registration_polls: int = 1
    """Gets a new Proton version answers REGISTRATION_IN_PROGRESS to before it settles."""
    registration_error: str | None = None
    """When set, registrations fail with this status message."""
    deployment_error: str | None = None
    """When set, Proton environment deployments fail with this status message."""
    failures: dict[str, Failure] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    proton: dict[str, dict[str, dict]] = field(
        default_factory=lambda: {"environment": {}, "service": {}}
    )
    tokens: dict[tuple[str, str], object] = field(default_factory=dict)
    portfolios: dict[str, dict] = field(default_factory=dict)
    products: dict[str, dict] = field(default_factory=dict)
    constraints: dict[str, dict] = field(default_factory=dict)
    environments: dict[str, dict] = field(default_factory=dict)
    instances: dict[tuple[str, str], dict] = field(default_factory=dict)
    provisioned: dict[str, dict] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def attach(self, client) -> None:
        service_id = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register_first(
            f"before-parameter-build.{service_id}", self._remember_params
        )
        client.meta.events.register_first(f"before-call.{service_id}", self._answer)

    def fail(self, operation: str, code: str = "InternalServerException", times: int = 1) -> None:
        self.failures[operation] = Failure(code, f"{operation} failed (injected)", times)

    def writes(self) -> list[str]:
        return [
            c
            for c in self.calls
            if not c.split(":")[1].startswith(("List", "Get", "Describe", "Search"))
        ]

    # -- plumbing ---------------------------------------------------------------------------

    @staticmethod
    def _remember_params(params, context, **_) -> None:
        context["fake_params"] = dict(params)

    def _answer(self, model, context, **_):
        service = model.service_model.service_name
        self.calls.append(f"{service}:{model.name}")
        params = context["fake_params"]
        try:
            refused = model_problems(model.input_shape, params)
            if refused:
                raise ApiError("ValidationException", "; ".join(refused))
            failure = self.failures.get(model.name)
            if failure is not None:
                failure.times -= 1
                if failure.times <= 0:
                    del self.failures[model.name]
                raise ApiError(failure.code, failure.message, 500)
            handler: Callable = getattr(self, f"_{service.replace('-', '')}_{model.name}")
            body = handler(**params)
        except ApiError as error:
            parsed = {
                "Error": {"Code": error.code, "Message": error.message},
                "ResponseMetadata": {"HTTPStatusCode": error.status},
            }
            return http_response(error.status), parsed
        botocore.validate.validate_parameters(body, model.output_shape)
        return http_response(200), {**body, "ResponseMetadata": {"HTTPStatusCode": 200}}

    def _id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):012d}"

    def _token(self, kind: str, token: str | None, make: Callable[[], dict]) -> dict:
        if token is None:
            return make()
        key = (kind, token)
        if key not in self.tokens:
            self.tokens[key] = make()
        return self.tokens[key]  # type: ignore[return-value]

    def _s3_object(self, bucket: str, key: str) -> bytes:
        try:
            return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[attr-defined]
        except Exception as error:
            raise ApiError(
                "ValidationException", f"cannot read s3://{bucket}/{key}: {error}"
            ) from None

    # -- Proton templates -------------------------------------------------------------------

    def _templates(self, kind: str, name: str) -> dict:
        if name not in self.proton[kind]:
            raise ApiError("ResourceNotFoundException", f"template {name} not found", 404)
        return self.proton[kind][name]

    def _create_template(self, kind: str, name: str, **params) -> dict:
        if name in self.proton[kind]:
            raise ApiError("ConflictException", f"template {name} exists", 409)
        arn = f"arn:aws:proton:us-east-1:{ACCOUNT}:{kind}-template/{name}"
        self.proton[kind][name] = {
            "template": {
                "name": name,
                "arn": arn,
                "createdAt": NOW,
                "lastModifiedAt": NOW,
                **({"displayName": params["displayName"]} if "displayName" in params else {}),
                **(
                    {"pipelineProvisioning": params["pipelineProvisioning"]}
                    if "pipelineProvisioning" in params
                    else {}
                ),
            },
            "versions": [],
        }
        return {f"{kind}Template": self.proton[kind][name]["template"]}

    def _get_template(self, kind: str, name: str) -> dict:
        return {f"{kind}Template": self._templates(kind, name)["template"]}

    def _create_version(
        self,
        kind: str,
        templateName: str,
        source: dict,
        clientToken=None,
        majorVersion=None,
        description="",
        compatibleEnvironmentTemplates=None,
        **_,
    ) -> dict:
        template = self._templates(kind, templateName)

        def make() -> dict:
            archive = self._s3_object(source["s3"]["bucket"], source["s3"]["key"])
            files = _tar_files(archive)
            versions = template["versions"]
            if majorVersion is None:
                major = 1 + max((int(v["majorVersion"]) for v in versions), default=0)
                minor = 0
            else:
                same = [
                    int(v["minorVersion"]) for v in versions if v["majorVersion"] == majorVersion
                ]
                if not same:
                    raise ApiError("ValidationException", f"major version {majorVersion} not found")
                major, minor = int(majorVersion), 1 + max(same)
            version = {
                "templateName": templateName,
                "majorVersion": str(major),
                "minorVersion": str(minor),
                "arn": f"{template['template']['arn']}:{major}.{minor}",
                "status": "REGISTRATION_IN_PROGRESS",
                "description": description,
                "createdAt": NOW,
                "lastModifiedAt": NOW,
                "schema": files.get("schema/schema.yaml", ""),
                "_polls": self.registration_polls,
                "_files": files,
            }
            if compatibleEnvironmentTemplates is not None:
                version["compatibleEnvironmentTemplates"] = compatibleEnvironmentTemplates
            versions.append(version)
            return version

        version = self._token(f"proton:{kind}:{templateName}", clientToken, make)
        return {f"{kind}TemplateVersion": _public(version)}

    def _version(self, kind: str, templateName: str, majorVersion: str, minorVersion: str) -> dict:
        for version in self._templates(kind, templateName)["versions"]:
            if (version["majorVersion"], version["minorVersion"]) == (majorVersion, minorVersion):
                return version
        raise ApiError("ResourceNotFoundException", f"{majorVersion}.{minorVersion} not found", 404)

    def _get_version(self, kind: str, **ref) -> dict:
        version = self._version(kind, **ref)
        if version["status"] == "REGISTRATION_IN_PROGRESS":
            template = self._templates(kind, ref["templateName"])["template"]
            refused = proton_bundle_rules.problems(
                kind, version["_files"], pipeline_provisioning=template.get("pipelineProvisioning")
            )
            if version["_polls"] > 0:
                version["_polls"] -= 1
            elif refused or self.registration_error:
                version["status"] = "REGISTRATION_FAILED"
                version["statusMessage"] = "; ".join(refused) or self.registration_error
            else:
                version["status"] = "DRAFT"
        return {f"{kind}TemplateVersion": _public(version)}

    def _update_version(self, kind: str, status=None, description=None, **ref) -> dict:
        version = self._version(kind, **ref)
        if status == "PUBLISHED" and version["status"] not in ("DRAFT", "PUBLISHED"):
            raise ApiError(
                "ValidationException", f"cannot publish a version in {version['status']}"
            )
        if status:
            version["status"] = status
        return {f"{kind}TemplateVersion": _public(version)}

    def _delete_version(self, kind: str, **ref) -> dict:
        version = self._version(kind, **ref)
        self._templates(kind, ref["templateName"])["versions"].remove(version)
        return {f"{kind}TemplateVersion": _public(version)}

    def _list_versions(self, kind: str, templateName: str, **_) -> dict:
        versions = self._templates(kind, templateName)["versions"]
        keys = (
            "arn",
            "createdAt",
            "description",
            "lastModifiedAt",
            "majorVersion",
            "minorVersion",
            "status",
            "statusMessage",
            "templateName",
        )
        return {"templateVersions": [{k: v[k] for k in keys if k in v} for v in versions]}

    def __getattr__(self, name: str):
        for kind, word in (("environment", "EnvironmentTemplate"), ("service", "ServiceTemplate")):
            table = {
                f"_proton_Create{word}": self._create_template,
                f"_proton_Get{word}": self._get_template,
                f"_proton_Create{word}Version": self._create_version,
                f"_proton_Get{word}Version": self._get_version,
                f"_proton_Update{word}Version": self._update_version,
                f"_proton_Delete{word}Version": self._delete_version,
                f"_proton_List{word}Versions": self._list_versions,
            }
            if name in table:
                return lambda **params: table[name](kind, **params)
        raise AttributeError(name)

    # -- Proton deployments -----------------------------------------------------------------

    def add_environment(self, name: str, template: str, major: str, minor: str) -> None:
        self.environments[name] = {
            "name": name,
            "arn": f"arn:aws:proton:us-east-1:{ACCOUNT}:environment/{name}",
            "createdAt": NOW,
            "lastDeploymentAttemptedAt": NOW,
            "lastDeploymentSucceededAt": NOW,
            "deploymentStatus": "SUCCEEDED",
            "templateName": template,
            "templateMajorVersion": major,
            "templateMinorVersion": minor,
            "protonServiceRoleArn": f"arn:aws:iam::{ACCOUNT}:role/proton",
        }

    def add_service_instance(
        self, service: str, name: str, environment: str, template: str, major: str, minor: str
    ) -> None:
        self.instances[(service, name)] = {
            "name": name,
            "serviceName": service,
            "environmentName": environment,
            "arn": f"arn:aws:proton:us-east-1:{ACCOUNT}:service/{service}/service-instance/{name}",
            "createdAt": NOW,
            "lastDeploymentAttemptedAt": NOW,
            "lastDeploymentSucceededAt": NOW,
            "deploymentStatus": "SUCCEEDED",
            "templateName": template,
            "templateMajorVersion": major,
            "templateMinorVersion": minor,
        }

    def _proton_ListEnvironments(self, **_) -> dict:
        keys = (
            "name",
            "arn",
            "createdAt",
            "lastDeploymentAttemptedAt",
            "lastDeploymentSucceededAt",
            "deploymentStatus",
            "templateName",
            "templateMajorVersion",
            "templateMinorVersion",
        )
        return {"environments": [{k: e[k] for k in keys} for e in self.environments.values()]}

    def _proton_ListServiceInstances(self, **_) -> dict:
        return {"serviceInstances": list(self.instances.values())}

    def _target(self, kind: str, template: str, major, minor) -> tuple[str, str]:
        versions = [
            v
            for v in self._templates(kind, template)["versions"]
            if v["status"] == "PUBLISHED" and (major is None or v["majorVersion"] == major)
        ]
        if not versions:
            raise ApiError("ValidationException", f"no published version of {template} {major}")
        if minor is None:
            best = max(versions, key=lambda v: int(v["minorVersion"]))
            return best["majorVersion"], best["minorVersion"]
        return major, minor

    def _proton_UpdateEnvironment(
        self,
        name: str,
        deploymentType: str,
        templateMajorVersion=None,
        templateMinorVersion=None,
        **_,
    ) -> dict:
        environment = self.environments[name]
        major, minor = self._target(
            "environment",
            environment["templateName"],
            templateMajorVersion or environment["templateMajorVersion"],
            templateMinorVersion,
        )
        if deploymentType == "MAJOR_VERSION" and major == environment["templateMajorVersion"]:
            raise ApiError("ValidationException", "a major version deployment needs a new major")
        environment.update(
            templateMajorVersion=major, templateMinorVersion=minor, deploymentStatus="IN_PROGRESS"
        )
        return {"environment": environment}

    def _proton_GetEnvironment(self, name: str) -> dict:
        environment = self.environments[name]
        if environment["deploymentStatus"] == "IN_PROGRESS" and self.deployment_error:
            environment["deploymentStatus"] = "FAILED"
            environment["deploymentStatusMessage"] = self.deployment_error
        elif environment["deploymentStatus"] == "IN_PROGRESS":
            environment["deploymentStatus"] = "SUCCEEDED"
        return {"environment": environment}

    def _proton_UpdateServiceInstance(
        self,
        serviceName: str,
        name: str,
        deploymentType: str,
        templateMajorVersion=None,
        templateMinorVersion=None,
        **_,
    ) -> dict:
        instance = self.instances[(serviceName, name)]
        major, minor = self._target(
            "service",
            instance["templateName"],
            templateMajorVersion or instance["templateMajorVersion"],
            templateMinorVersion,
        )
        instance.update(
            templateMajorVersion=major, templateMinorVersion=minor, deploymentStatus="IN_PROGRESS"
        )
        return {"serviceInstance": instance}

    def _proton_GetServiceInstance(self, serviceName: str, name: str) -> dict:
        instance = self.instances[(serviceName, name)]
        if instance["deploymentStatus"] == "IN_PROGRESS":
            instance["deploymentStatus"] = "SUCCEEDED"
        return {"serviceInstance": instance}

    # -- Service Catalog --------------------------------------------------------------------

    def _servicecatalog_ListPortfolios(self, **_) -> dict:
        return {"PortfolioDetails": [p["detail"] for p in self.portfolios.values()]}

    def _servicecatalog_CreatePortfolio(
        self, DisplayName: str, ProviderName: str, IdempotencyToken: str, Description="", **_
    ) -> dict:
        def make() -> dict:
            pid = self._id("port")
            detail = {
                "Id": pid,
                "ARN": f"arn:aws:catalog:us-east-1:{ACCOUNT}:portfolio/{pid}",
                "DisplayName": DisplayName,
                "Description": Description,
                "CreatedTime": NOW,
                "ProviderName": ProviderName,
            }
            self.portfolios[pid] = {"detail": detail, "principals": [], "products": set()}
            return detail

        return {"PortfolioDetail": self._token("portfolio", IdempotencyToken, make)}

    def _portfolio(self, pid: str) -> dict:
        if pid not in self.portfolios:
            raise ApiError("ResourceNotFoundException", f"portfolio {pid} not found")
        return self.portfolios[pid]

    def _servicecatalog_ListPrincipalsForPortfolio(self, PortfolioId: str, **_) -> dict:
        return {
            "Principals": [
                {"PrincipalARN": a, "PrincipalType": "IAM"}
                for a in self._portfolio(PortfolioId)["principals"]
            ]
        }

    def _servicecatalog_AssociatePrincipalWithPortfolio(
        self, PortfolioId: str, PrincipalARN: str, **_
    ) -> dict:
        principals = self._portfolio(PortfolioId)["principals"]
        if PrincipalARN not in principals:
            principals.append(PrincipalARN)
        return {}

    def _servicecatalog_DisassociatePrincipalFromPortfolio(
        self, PortfolioId: str, PrincipalARN: str, **_
    ) -> dict:
        principals = self._portfolio(PortfolioId)["principals"]
        if PrincipalARN not in principals:
            raise ApiError("ResourceNotFoundException", f"{PrincipalARN} has no access")
        principals.remove(PrincipalARN)
        return {}

    def _product(self, product_id: str) -> dict:
        if product_id not in self.products:
            raise ApiError("ResourceNotFoundException", f"product {product_id} not found")
        return self.products[product_id]

    def _artifact(self, parameters: dict) -> dict:
        # Service Catalog reads the template with the caller's permissions: a signed S3 read.
        url = urllib.parse.urlparse(parameters["Info"]["LoadTemplateFromURL"])
        bucket, key = url.path.lstrip("/").split("/", 1)
        try:
            text = self._s3_object(bucket, key).decode()
        except ApiError:
            raise ApiError(
                "InvalidParametersException", f"cannot load the template from {url.geturl()}"
            ) from None
        yaml.load(text, Loader=yaml.CSafeLoader)  # Service Catalog validates the template
        return {
            "Id": self._id("pa"),
            "Name": parameters["Name"],
            "Description": parameters.get("Description", ""),
            "Type": parameters["Type"],
            "CreatedTime": NOW,
            "Active": True,
            "Guidance": "DEFAULT",
            "_body": text,
        }

    def _servicecatalog_CreateProduct(
        self,
        Name: str,
        Owner: str,
        ProductType: str,
        IdempotencyToken: str,
        ProvisioningArtifactParameters: dict,
        Description="",
        **details,
    ) -> dict:
        def make() -> dict:
            artifact = self._artifact(ProvisioningArtifactParameters)
            pid = self._id("prod")
            summary = {
                "Id": self._id("prodview"),
                "ProductId": pid,
                "Name": Name,
                "Owner": Owner,
                "ShortDescription": Description,
                "Type": ProductType,
                **{k: v for k, v in details.items() if k in _SHOWN},
            }
            self.products[pid] = {"summary": summary, "artifacts": [artifact]}
            return {
                "ProductViewDetail": {
                    "ProductViewSummary": summary,
                    "Status": "CREATED",
                    "ProductARN": f"arn:aws:catalog:us-east-1:{ACCOUNT}:product/{pid}",
                    "CreatedTime": NOW,
                },
                "ProvisioningArtifactDetail": _public(artifact),
            }

        return self._token("product", IdempotencyToken, make)

    def _servicecatalog_UpdateProduct(self, Id: str, Description=None, **changes) -> dict:
        product = self._product(Id)
        if Description is not None:
            changes["ShortDescription"] = Description
        for key, value in changes.items():
            if key in _SHOWN or key == "ShortDescription":
                product["summary"][key] = value
        return {
            "ProductViewDetail": {
                "ProductViewSummary": product["summary"],
                "Status": "CREATED",
                "CreatedTime": NOW,
            },
            "Tags": [],
        }

    def _servicecatalog_DescribeProductAsAdmin(self, Name: str, **_) -> dict:
        for _pid, product in self.products.items():
            if product["summary"]["Name"] == Name:
                return {
                    "ProductViewDetail": {
                        "ProductViewSummary": product["summary"],
                        "Status": "CREATED",
                        "CreatedTime": NOW,
                    },
                    "ProvisioningArtifactSummaries": [
                        {k: a[k] for k in ("Id", "Name", "Description", "CreatedTime")}
                        for a in product["artifacts"]
                    ],
                }
        raise ApiError("ResourceNotFoundException", f"product {Name} not found")

    def _servicecatalog_CreateProvisioningArtifact(
        self, ProductId: str, Parameters: dict, IdempotencyToken: str, **_
    ) -> dict:
        product = self._product(ProductId)

        def make() -> dict:
            if any(a["Name"] == Parameters["Name"] for a in product["artifacts"]):
                raise ApiError("DuplicateResourceException", f"{Parameters['Name']} exists")
            artifact = self._artifact(Parameters)
            product["artifacts"].append(artifact)
            return {"ProvisioningArtifactDetail": _public(artifact), "Status": "CREATING"}

        return self._token("artifact", IdempotencyToken, make)

    def _servicecatalog_ListProvisioningArtifacts(self, ProductId: str, **_) -> dict:
        return {
            "ProvisioningArtifactDetails": [
                _public(a) for a in self._product(ProductId)["artifacts"]
            ]
        }

    def _servicecatalog_UpdateProvisioningArtifact(
        self, ProductId: str, ProvisioningArtifactId: str, **changes
    ) -> dict:
        for artifact in self._product(ProductId)["artifacts"]:
            if artifact["Id"] == ProvisioningArtifactId:
                artifact.update({k: v for k, v in changes.items() if k in ("Active", "Guidance")})
                return {"ProvisioningArtifactDetail": _public(artifact), "Status": "AVAILABLE"}
        raise ApiError("ResourceNotFoundException", ProvisioningArtifactId)

    def _servicecatalog_AssociateProductWithPortfolio(
        self, ProductId: str, PortfolioId: str, **_
    ) -> dict:
        self._product(ProductId)
        self._portfolio(PortfolioId)["products"].add(ProductId)
        return {}

    def _servicecatalog_ListConstraintsForPortfolio(
        self, PortfolioId: str, ProductId=None, **_
    ) -> dict:
        self._portfolio(PortfolioId)
        found = [
            {k: v for k, v in c.items() if not k.startswith("_")}
            for c in self.constraints.values()
            if c["PortfolioId"] == PortfolioId and ProductId in (None, c["ProductId"])
        ]
        return {"ConstraintDetails": found}

    def _servicecatalog_CreateConstraint(
        self,
        PortfolioId: str,
        ProductId: str,
        Parameters: str,
        Type: str,
        IdempotencyToken: str,
        Description="",
        **_,
    ) -> dict:
        def make() -> dict:
            if ProductId not in self._portfolio(PortfolioId)["products"]:
                raise ApiError("InvalidParametersException", "the product is not in the portfolio")
            if Type == "LAUNCH" and any(
                c["Type"] == "LAUNCH"
                and c["ProductId"] == ProductId
                and c["PortfolioId"] == PortfolioId
                for c in self.constraints.values()
            ):
                raise ApiError("DuplicateResourceException", "a launch constraint exists")
            cid = self._id("cons")
            self.constraints[cid] = {
                "ConstraintId": cid,
                "Type": Type,
                "Description": Description,
                "Owner": ACCOUNT,
                "ProductId": ProductId,
                "PortfolioId": PortfolioId,
                "_parameters": json.loads(Parameters),
            }
            detail = {k: v for k, v in self.constraints[cid].items() if not k.startswith("_")}
            return {
                "ConstraintDetail": detail,
                "ConstraintParameters": Parameters,
                "Status": "AVAILABLE",
            }

        return self._token("constraint", IdempotencyToken, make)

    def _servicecatalog_DeleteConstraint(self, Id: str, **_) -> dict:
        self.constraints.pop(Id, None)
        return {}

    # -- Service Catalog provisioned products -----------------------------------------------

    def add_provisioned(self, name: str, product: str, artifact_name: str) -> None:
        pid, item = next(
            (k, p) for k, p in self.products.items() if p["summary"]["Name"] == product
        )
        artifact = next(a for a in item["artifacts"] if a["Name"] == artifact_name)
        self.provisioned[name] = {
            "Name": name,
            "Id": self._id("pp"),
            "Type": "CFN_STACK",
            "Status": "AVAILABLE",
            "Arn": f"arn:aws:servicecatalog:us-east-1:{ACCOUNT}:stack/{name}",
            "CreatedTime": NOW,
            "ProductId": pid,
            "ProductName": product,
            "ProvisioningArtifactId": artifact["Id"],
            "ProvisioningArtifactName": artifact["Name"],
        }

    def _servicecatalog_DescribeProvisioningArtifact(
        self, ProductId: str, ProvisioningArtifactId: str, **_
    ) -> dict:
        for artifact in self._product(ProductId)["artifacts"]:
            if artifact["Id"] == ProvisioningArtifactId:
                parameters = yaml.load(artifact["_body"], Loader=yaml.CSafeLoader).get(
                    "Parameters", {}
                )
                return {
                    "ProvisioningArtifactDetail": _public(artifact),
                    "Status": "AVAILABLE",
                    "ProvisioningArtifactParameters": [
                        {
                            "ParameterKey": k,
                            "ParameterType": v["Type"],
                            "IsNoEcho": False,
                            "Description": v.get("Description", ""),
                        }
                        for k, v in parameters.items()
                    ],
                }
        raise ApiError("ResourceNotFoundException", ProvisioningArtifactId)

    def _servicecatalog_SearchProvisionedProducts(self, **_) -> dict:
        return {
            "ProvisionedProducts": [_public(p) for p in self.provisioned.values()],
            "TotalResultsCount": len(self.provisioned),
        }

    def _servicecatalog_UpdateProvisionedProduct(
        self,
        ProvisionedProductId: str,
        ProvisioningArtifactId: str,
        UpdateToken: str,
        ProvisioningParameters=(),
        **_,
    ) -> dict:
        def make() -> dict:
            item = next(p for p in self.provisioned.values() if p["Id"] == ProvisionedProductId)
            artifact = next(
                a
                for a in self._product(item["ProductId"])["artifacts"]
                if a["Id"] == ProvisioningArtifactId
            )
            item.update(
                _parameters=list(ProvisioningParameters),
                ProvisioningArtifactId=artifact["Id"],
                ProvisioningArtifactName=artifact["Name"],
                Status="UNDER_CHANGE",
            )
            record = {
                "RecordId": self._id("rec"),
                "ProvisionedProductName": item["Name"],
                "Status": "IN_PROGRESS",
                "CreatedTime": NOW,
                "UpdatedTime": NOW,
                "ProvisionedProductId": item["Id"],
                "ProductId": item["ProductId"],
                "ProvisioningArtifactId": artifact["Id"],
                "RecordType": "UPDATE_PROVISIONED_PRODUCT",
            }
            self.tokens[("record", record["RecordId"])] = record
            return {"RecordDetail": record}

        return self._token("update", UpdateToken, make)

    def _servicecatalog_DescribeRecord(self, Id: str, **_) -> dict:
        record = self.tokens[("record", Id)]
        if record["Status"] == "IN_PROGRESS":  # type: ignore[index]
            record["Status"] = "SUCCEEDED"  # type: ignore[index]
            item = next(
                p for p in self.provisioned.values() if p["Id"] == record["ProvisionedProductId"]
            )  # type: ignore[index]
            item["Status"] = "AVAILABLE"
        return {"RecordDetail": record}


_SHOWN = ("Distributor", "SupportDescription", "SupportEmail", "SupportUrl", "Owner")
"""ProductViewSummary fields that CreateProduct and UpdateProduct set under the same name."""


def model_problems(shape, value, path: str = "") -> list[str]:
    """What AWS refuses that botocore's client-side validation lets through: the model's
    `max` lengths and counts and its `pattern`s (botocore checks types, required members and
    `min` only)."""
    if shape is None:
        return []
    problems: list[str] = []
    limits = shape.metadata
    if shape.type_name == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                problems += model_problems(member, value[name], f"{path}.{name}".lstrip("."))
    elif shape.type_name == "list" and isinstance(value, list):
        if "max" in limits and len(value) > limits["max"]:
            problems.append(f"{path}: {len(value)} items, at most {limits['max']}")
        for index, item in enumerate(value):
            problems += model_problems(shape.member, item, f"{path}[{index}]")
    elif shape.type_name == "map" and isinstance(value, dict):
        for key, item in value.items():
            problems += model_problems(shape.value, item, f"{path}.{key}")
    elif shape.type_name == "string" and isinstance(value, str):
        if "max" in limits and len(value) > limits["max"]:
            problems.append(f"{path}: {len(value)} characters, at most {limits['max']}")
        pattern = limits.get("pattern")
        if pattern and _compiled(pattern) and not _compiled(pattern).search(value):
            problems.append(f"{path}: {value[:60]!r} does not match {pattern}")
    return problems


@functools.cache
def _compiled(pattern: str) -> re.Pattern | None:
    """The model's pattern as Python reads it; None for the few Java-only ones."""
    try:
        return re.compile(pattern.replace(r"\p{L}", r"\w").replace(r"\p{Z}", r"\s")
                          .replace(r"\p{N}", r"\d"))  # fmt: skip
    except re.error:
        return None


def _public(item: dict) -> dict:
    return {k: v for k, v in item.items() if not k.startswith("_")}


def _tar_files(data: bytes) -> dict[str, str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers() if m.isfile()}


def http_response(status: int) -> botocore.awsrequest.AWSResponse:
    return botocore.awsrequest.AWSResponse("https://fake.invalid/", status, {}, io.BytesIO(b""))


def new_id() -> str:
    return uuid.uuid4().hex

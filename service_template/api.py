"""The team's HTTP API: every path proxied to the tracking server through the VPC link."""

from __future__ import annotations

import json
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_logs as logs
from constructs import Construct

from mlflow_platform import contract
from mlflow_platform.building import checkov_skips
from mlflow_platform.building.nag import acknowledge
from tracking_server import settings

ROUTE_KEYS = ("ANY /{proxy+}", "ANY /")
HOST_MAPPING = "overwrite:header.Host"
# API Gateway's hard limit for an HTTP API integration.
INTEGRATION_TIMEOUT_MS = 30000
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "caller": "$context.identity.caller",
    "user": "$context.identity.user",
    "requestTime": "$context.requestTime",
    "httpMethod": "$context.httpMethod",
    "path": "$context.path",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "integrationLatency": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
}


@dataclass(frozen=True, kw_only=True)
class TrackingApiProps:
    team_name: str
    throttling_rate_limit: cdk.CfnParameter
    throttling_burst_limit: cdk.CfnParameter
    log_retention_days: cdk.CfnParameter
    tls_server_name: cdk.CfnParameter


class TrackingApi(Construct):
    def __init__(self, scope: Construct, id: str, *, props: TrackingApiProps) -> None:
        super().__init__(scope, id)
        self.api = apigwv2.CfnApi(
            self,
            "Api",
            name=cdk.Fn.join("-", ["mlflow", props.team_name]),
            protocol_type="HTTP",
            description="MLflow tracking API of one team, private integration into the "
            "MLflow environment",
        )
        verify_tls = cdk.CfnCondition(
            self,
            "VerifyTls",
            expression=cdk.Fn.condition_not(
                cdk.Fn.condition_equals(props.tls_server_name.value_as_string, contract.TLS_OFF)
            ),
        )
        integration = apigwv2.CfnIntegration(
            self,
            "Integration",
            api_id=self.api.ref,
            integration_type="HTTP_PROXY",
            integration_method="ANY",
            connection_type="VPC_LINK",
            connection_id=contract.read(contract.VPC_LINK_ID),
            integration_uri=contract.read(contract.LISTENER_ARN),
            payload_format_version="1.0",
            timeout_in_millis=INTEGRATION_TIMEOUT_MS,
            # With TlsConfig, private integration traffic uses HTTPS, and API Gateway verifies
            # the certificate's host name against ServerNameToVerify, also sent as SNI
            # (AWS::ApiGatewayV2::Integration TlsConfig; API Gateway Developer Guide, "Working
            # with private integrations for HTTP APIs").
            tls_config=cdk.Fn.condition_if(
                verify_tls.logical_id,
                {"ServerNameToVerify": props.tls_server_name.value_as_string},
                cdk.Aws.NO_VALUE,
            ),
            # The server accepts only the Host its load balancer is called by, whatever domain
            # (execute-api or a custom one) the client used. Host is not among the headers
            # HTTP APIs reserve from parameter mapping (API Gateway Developer Guide,
            # "Transforming API requests and responses for HTTP APIs").
            # iam mode: the caller API Gateway verified, on every request, whatever the client
            # sent in that header (identity.py in the tracking server).
            # Both modes: the routes' authorization type (the same contract value the routes
            # take, fixed at deploy), which the server checks against its AuthMode, and the
            # domain the client called, whose pages alone the server serves across origins
            # (request_guard.py in the tracking server).
            request_parameters={
                HOST_MAPPING: contract.read(contract.TRACKING_HOST),
                settings.CALLER_MAPPING: settings.CALLER_VALUE,
                settings.ROUTE_AUTHORIZATION_MAPPING: contract.read(contract.ROUTE_AUTHORIZATION),
                settings.DOMAIN_MAPPING: settings.DOMAIN_VALUE,
            },
        )
        self.routes = [
            apigwv2.CfnRoute(
                self,
                "Root" if key == "ANY /" else "Proxy",
                api_id=self.api.ref,
                route_key=key,
                target=f"integrations/{integration.ref}",
                authorization_type=contract.read(contract.ROUTE_AUTHORIZATION),
            )
            for key in ROUTE_KEYS
        ]
        for route in self.routes:
            acknowledge(
                route,
                "AwsSolutions-APIG4",
                "The authorization type follows the environment's auth mode: AWS_IAM in iam "
                "mode; in basic mode the tracking server authenticates every request itself",
            )
        self.access_logs = logs.CfnLogGroup(
            self, "AccessLogs", retention_in_days=props.log_retention_days.value_as_number
        )
        self.access_logs.apply_removal_policy(cdk.RemovalPolicy.RETAIN)
        checkov_skips.skip(
            self.access_logs, "CKV_AWS_158", checkov_skips.LOG_GROUP_SERVICE_ENCRYPTION
        )
        self.stage = apigwv2.CfnStage(
            self,
            "DefaultStage",
            api_id=self.api.ref,
            stage_name="$default",
            auto_deploy=True,
            access_log_settings=apigwv2.CfnStage.AccessLogSettingsProperty(
                destination_arn=self.access_logs.attr_arn,
                format=json.dumps(ACCESS_LOG_FORMAT, separators=(",", ":")),
            ),
            default_route_settings=apigwv2.CfnStage.RouteSettingsProperty(
                throttling_rate_limit=props.throttling_rate_limit.value_as_number,
                throttling_burst_limit=props.throttling_burst_limit.value_as_number,
                detailed_metrics_enabled=True,
            ),
        )
        self.url = f"https://{self.api.ref}.execute-api.{cdk.Aws.REGION}.{cdk.Aws.URL_SUFFIX}"

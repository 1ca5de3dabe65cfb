"""Executors emulating managed compute in the local cloud, loaded by import path."""

from __future__ import annotations

from localcloud.executors.base import CloudServices, Executor

# "module:attribute" paths; a module that is not written yet is skipped by the local cloud.
EXECUTORS: list[str] = [
    "localcloud.executors.glue:GlueExecutor",
    "localcloud.executors.training:TrainingExecutor",
    "localcloud.executors.endpoint:EndpointExecutor",
    "localcloud.executors.registry:ModelRegistryEvents",
    "localcloud.executors.lambda_api:LambdaInvokeApi",
    "localcloud.executors.firehose:FirehoseDelivery",
]

__all__ = ["EXECUTORS", "CloudServices", "Executor"]

"""Request and response bodies of the web API; the OpenAPI document is generated from them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from mlops.web.fields import FieldError

MAX_BATCH_ROWS = 100
# What the schema documents is what the code enforces: an empty batch is a 422 ("no rows"), a
# batch over the limit a 413 (service.predict), so pydantic itself checks neither bound.
_BATCH_BOUNDS = {"minItems": 1, "maxItems": MAX_BATCH_ROWS}


class Row(RootModel[dict[str, Any]]):
    """One row of feature values keyed by column name (the dataset contract's feature columns).

    Values are checked against the contract (``mlops.web.fields.validate_rows``), not here,
    so every error comes back in one list with its row index and field.
    """


class PredictionInstances(BaseModel):
    """A batch of rows, in the shape SageMaker and TF Serving use."""

    model_config = ConfigDict(extra="forbid")

    instances: list[Row] = Field(
        description=f"the rows to predict, 1 to {MAX_BATCH_ROWS}",
        json_schema_extra=_BATCH_BOUNDS,
    )


def _bound_row_lists(schema: dict[str, Any]) -> None:
    # Declared on the schema only: a constraint on the list branch changes how Powertools
    # reads the union, and the code's own answers (422 / 413) say more than pydantic's.
    for branch in schema.get("anyOf", ()):
        if branch.get("type") == "array":
            branch.update(_BATCH_BOUNDS, description=f"1 to {MAX_BATCH_ROWS} rows")


class PredictionRequest(
    RootModel[Annotated[PredictionInstances | list[Row] | Row, Field(union_mode="left_to_right")]]
):
    """One row, a list of rows, or ``{"instances": [rows]}``."""

    model_config = ConfigDict(json_schema_extra=_bound_row_lists)

    def rows(self) -> list[Any]:
        body = self.root
        if isinstance(body, PredictionInstances):
            return [row.root for row in body.instances]
        if isinstance(body, list):
            return [row.root for row in body]
        return [body.root]


class ModelVersion(BaseModel):
    """Which model answered: registry version, lineage and when it was trained."""

    endpoint: str
    version: str | None = None
    model_package_arn: str | None = None
    run_id: str | None = None
    trained_at: str | None = None


class PredictionResponse(BaseModel):
    predictions: list[Any] = Field(description="one prediction per row, in request order")
    probabilities: list[Any] | None = Field(
        default=None, description="class probabilities per row (classification models only)"
    )
    target: str = Field(description="the contract's target column that is predicted")
    model: ModelVersion


class ErrorResponse(BaseModel):
    """Every error answer: a message for people, field errors for forms (422 only)."""

    message: str
    errors: list[FieldError] = Field(default_factory=list)
    request_id: str | None = None


class ModelResponse(BaseModel):
    endpoint: str
    endpoint_status: str
    version: str | None = None
    model_package_arn: str | None = None
    run_id: str | None = None
    dataset: str | None = None
    trained_at: str | None = None
    registered_at: str | None = Field(
        default=None, description="when the model package was registered (just after training)"
    )
    evaluation: dict[str, Any] | None = Field(
        default=None, description="the model package's evaluation metrics, when reachable"
    )


class HealthResponse(BaseModel):
    """Whether the endpoint can serve: its SageMaker status, the version it serves and whether
    its model server answers."""

    status: Literal["ok", "unavailable"]
    endpoint: str
    endpoint_status: str = Field(
        description="SageMaker's EndpointStatus (InService, Creating, Updating, Failed …), "
        "Missing when no model is deployed, Unknown when it cannot be read"
    )
    version: str | None = Field(default=None, description="the model package version served")
    model_answers: bool = Field(
        description="whether the model server behind the endpoint answers (an InService "
        "endpoint can still have none while SageMaker replaces an unhealthy instance)"
    )
    message: str | None = None
    retry_after: int | None = Field(
        default=None, description="seconds to wait before asking again (also Retry-After)"
    )

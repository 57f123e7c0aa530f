"""What every settings section shares: the strict base model, and where the checkout is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

PROJECT_ROOT = Path(__file__).resolve().parents[4]  # the checkout: src/visionloop/core/settings/base.py


class StrictModel(BaseModel):
    """Base for every settings section: unknown keys are errors, not silent defaults; so are an infinite or NaN
    number and true/false where a number is expected (pydantic would read them as 1 and 0)."""

    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and info.field_name is not None:
            annotation = cls.model_fields[info.field_name].annotation
            if annotation in (int, float, int | None, float | None):
                raise PydanticCustomError("number_not_boolean", "Input should be a number, not true/false")
        return value

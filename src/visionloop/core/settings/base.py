"""What every settings section shares: the strict base model, the error of a check across sections, the checkout."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from visionloop.core.layout import CHECKOUT_ROOT

PROJECT_ROOT = CHECKOUT_ROOT

# The context entry of a cross-section error that lists the key paths it is about (see keys_disagree).
KEYS_CONTEXT = "keys"


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


def keys_disagree(message: str, keys: tuple[str, ...], **values: str) -> PydanticCustomError:
    """The error of a check across sections, its message naming the keys itself (``values`` fill its ``{name}``
    fields). A model validator of Settings has no key of its own, so the key paths travel with the error: the loader
    says where each of them came from."""
    return PydanticCustomError("keys_disagree", message, {**values, KEYS_CONTEXT: keys})

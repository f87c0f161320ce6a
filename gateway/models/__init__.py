"""The registry of meter models: model key -> :class:`~gateway.register_map.MeterModel`.

Adding a meter is adding a module with a table and listing it here; a key that appears twice is a
mistake caught at import, not a silent override.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from gateway.models import sdm120, sdm630, sunspec
from gateway.register_map import MeterModel, RegisterMapError

__all__ = ["MODELS", "UnknownModelError", "get_model"]


class UnknownModelError(KeyError):
    def __str__(self) -> str:
        return f"unknown meter model {self.args[0]!r}; known: {', '.join(sorted(MODELS))}"


def _build(models: Iterable[MeterModel]) -> Mapping[str, MeterModel]:
    registry: dict[str, MeterModel] = {}
    for model in models:
        if model.key in registry:
            raise RegisterMapError(f"meter model {model.key!r} is registered twice")
        registry[model.key] = model
    return MappingProxyType(registry)


MODELS: Mapping[str, MeterModel] = _build([sdm120.MODEL, sdm630.MODEL, sunspec.MODEL])


def get_model(key: str) -> MeterModel:
    try:
        return MODELS[key]
    except KeyError:
        raise UnknownModelError(key) from None

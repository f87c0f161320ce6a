"""The tables refuse contradictions; the registry refuses duplicates; every model is coherent."""

from __future__ import annotations

import pytest

from gateway.measurements import Measurement as M
from gateway.models import MODELS, UnknownModelError, _build, get_model
from gateway.models.sunspec import INT_METER, METER_MODELS
from gateway.register_map import DataType, Field, MeterModel, Probe, RegisterMap, RegisterMapError, RegisterRange


def test_registry_has_the_three_families() -> None:
    assert set(MODELS) == {"sdm120", "sdm630", "sunspec"}
    for key, model in MODELS.items():
        assert model.key == key
        assert model.datasheet.startswith("https://")
        assert model.rated_power_w > 0


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(UnknownModelError, match="sdm120, sdm630, sunspec"):
        get_model("sdm72")


def test_duplicate_model_key_is_refused() -> None:
    with pytest.raises(RegisterMapError, match="registered twice"):
        _build([MODELS["sdm120"], MODELS["sdm120"]])


def test_duplicate_measurement_is_refused() -> None:
    with pytest.raises(RegisterMapError, match="listed twice"):
        RegisterMap("t", (Field(M.FREQUENCY, 0), Field(M.FREQUENCY, 2)))


def test_overlapping_registers_are_refused() -> None:
    with pytest.raises(RegisterMapError, match="overlap at register 1"):
        RegisterMap("t", (Field(M.FREQUENCY, 0), Field(M.VOLTAGE_L1, 1)))
    # The same address under another function code is a different register.
    RegisterMap("t", (Field(M.FREQUENCY, 0, function_code=3), Field(M.VOLTAGE_L1, 0, function_code=4)))


def test_scale_factor_must_not_sit_on_a_value() -> None:
    with pytest.raises(RegisterMapError, match="scale factor"):
        RegisterMap(
            "t",
            (Field(M.POWER_TOTAL, 0, DataType.INT16, scale_factor_at=1), Field(M.FREQUENCY, 1, DataType.INT16)),
        )


def test_model_needs_exactly_one_kind_of_table() -> None:
    probe = Probe(RegisterRange(4, 0, 2))
    with pytest.raises(RegisterMapError):
        MeterModel("x", "x", "https://x", probe, 1)
    with pytest.raises(RegisterMapError, match="absolute"):
        MeterModel("x", "x", "https://x", probe, 1, table=INT_METER)


def test_select_and_resolve() -> None:
    table = MODELS["sdm630"].table
    assert table is not None
    small = table.select([M.IMPORT_ENERGY, M.EXPORT_ENERGY, M.POWER_TOTAL])
    assert small.measurements == (M.POWER_TOTAL, M.IMPORT_ENERGY, M.EXPORT_ENERGY)
    with pytest.raises(RegisterMapError, match="does not provide"):
        MODELS["sdm120"].table.select([M.VOLTAGE_L3])  # type: ignore[union-attr]
    with pytest.raises(RegisterMapError, match="already absolute"):
        table.resolve(40000)


def test_sunspec_tables_fit_their_model_lengths() -> None:
    lengths = {201: 105, 202: 105, 203: 105, 204: 105, 211: 124, 212: 124, 213: 124, 214: 124}
    for model_id, table in METER_MODELS.items():
        extent = max(r.end for r in table.reads())
        assert extent <= 2 + lengths[model_id], model_id


def test_every_measurement_has_unit_and_description() -> None:
    for m in M:
        assert m.description
        assert M.by_name(m.value) is m

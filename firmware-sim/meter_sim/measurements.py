"""Turns one power sample and the energy counters into every quantity a meter displays: per-phase
voltages, currents, powers, power factors, frequency, distortion and the energy registers."""

from __future__ import annotations

import math

from meter_sim.profiles import Counters, PowerSample
from meter_sim.quantities import Quantity as Q

NOMINAL_V = 230.0
NOMINAL_HZ = 50.0

# Household loads are rarely balanced; a three-phase inverter feeds all phases equally.
LOAD_SPLIT_3P = (0.45, 0.30, 0.25)
LOAD_SPLIT_1P = (1.0, 0.0, 0.0)


def _spread(noise: float, i: int) -> float:
    """Cheap decorrelated numbers in [0, 1) from one: enough for voltage ripple between phases."""
    return (noise * (i + 1) * 7.31 + 0.37 * i) % 1.0


def measure(sample: PowerSample, counters: Counters, phases: int) -> dict[Q, float]:
    if phases not in (1, 3):
        raise ValueError(f"phases must be 1 or 3, not {phases}")
    split = LOAD_SPLIT_3P if phases == 3 else LOAD_SPLIT_1P
    active = range(phases)
    pf = sample.power_factor
    angle = math.degrees(math.acos(pf))
    v: list[float] = [0.0, 0.0, 0.0]
    i: list[float] = [0.0, 0.0, 0.0]
    p: list[float] = [0.0, 0.0, 0.0]
    s: list[float] = [0.0, 0.0, 0.0]
    q: list[float] = [0.0, 0.0, 0.0]
    thd: list[float] = [0.0, 0.0, 0.0]
    for k in active:
        p[k] = sample.load_w * split[k] - sample.solar_w / phases
        # Exporting lifts the local voltage, importing drags it down (about 0.8 V per kW per phase).
        v[k] = NOMINAL_V + 3.0 * (_spread(sample.grid_noise, k) - 0.5) - 0.8 * p[k] / 1000.0
        s[k] = abs(p[k]) / pf
        q[k] = math.sqrt(max(0.0, s[k] * s[k] - p[k] * p[k]))
        i[k] = s[k] / v[k]
        thd[k] = 1.5 + 1.5 * _spread(sample.grid_noise, k + 3)
    ll = [0.0, 0.0, 0.0]
    if phases == 3:
        # Line-to-line from two phase voltages 120 degrees apart.
        for k in range(3):
            a, b = v[k], v[(k + 1) % 3]
            ll[k] = math.sqrt(a * a + b * b + a * b)
    # Neutral current: phasor sum of three currents at the same angle, 120 degrees apart.
    i_n = math.sqrt(max(0.0, i[0] ** 2 + i[1] ** 2 + i[2] ** 2 - i[0] * i[1] - i[1] * i[2] - i[2] * i[0]))
    total_p = sum(p)
    total_s = sum(s)
    imp, exp = counters.import_wh, counters.export_wh
    exp_split = (1.0 / phases,) * phases + (0.0,) * (3 - phases)
    values = {
        Q.V_L1: v[0], Q.V_L2: v[1], Q.V_L3: v[2],
        Q.V_LN_AVG: sum(v) / phases,
        Q.V_L12: ll[0], Q.V_L23: ll[1], Q.V_L31: ll[2],
        Q.V_LL_AVG: sum(ll) / 3.0,
        Q.I_L1: i[0], Q.I_L2: i[1], Q.I_L3: i[2],
        Q.I_AVG: sum(i) / phases,
        Q.I_SUM: sum(i),
        Q.I_N: i_n if phases == 3 else i[0],
        Q.P_L1: p[0], Q.P_L2: p[1], Q.P_L3: p[2],
        Q.P_TOTAL: total_p,
        Q.S_L1: s[0], Q.S_L2: s[1], Q.S_L3: s[2],
        Q.S_TOTAL: total_s,
        Q.Q_L1: q[0], Q.Q_L2: q[1], Q.Q_L3: q[2],
        Q.Q_TOTAL: sum(q),
        Q.PF_L1: pf,
        Q.PF_L2: pf if phases == 3 else 0.0,
        Q.PF_L3: pf if phases == 3 else 0.0,
        Q.PF_TOTAL: pf,
        Q.ANGLE_L1: angle,
        Q.ANGLE_L2: angle if phases == 3 else 0.0,
        Q.ANGLE_L3: angle if phases == 3 else 0.0,
        Q.ANGLE_TOTAL: angle,
        Q.FREQUENCY: NOMINAL_HZ + 0.06 * (_spread(sample.grid_noise, 7) - 0.5),
        Q.THD_V_L1: thd[0], Q.THD_V_L2: thd[1], Q.THD_V_L3: thd[2],
        Q.THD_V_AVG: sum(thd) / phases,
        Q.IMPORT_WH: imp,
        Q.EXPORT_WH: exp,
        Q.TOTAL_WH: imp + exp,
        Q.IMPORT_VARH: counters.import_varh,
        Q.EXPORT_VARH: counters.export_varh,
        Q.TOTAL_VARH: counters.import_varh + counters.export_varh,
    }
    for k, (qi, qe, qt) in enumerate(
        (
            (Q.IMPORT_WH_L1, Q.EXPORT_WH_L1, Q.TOTAL_WH_L1),
            (Q.IMPORT_WH_L2, Q.EXPORT_WH_L2, Q.TOTAL_WH_L2),
            (Q.IMPORT_WH_L3, Q.EXPORT_WH_L3, Q.TOTAL_WH_L3),
        )
    ):
        # Per-phase registers are the totals apportioned like the load; they always add up to the totals.
        values[qi] = imp * split[k]
        values[qe] = exp * exp_split[k]
        values[qt] = values[qi] + values[qe]
    return values

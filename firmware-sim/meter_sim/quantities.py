"""One measurement vocabulary that every register table maps into.

Energies are kept in Wh/varh and powers in W/VA/var whatever a meter's registers use; a register table
converts with its point's power-of-ten scale. Signs: active power is positive when the site imports from
the grid and negative when it exports (the convention of the SDM meters' bidirectional mode and of the
SunSpec meter models).
"""

from __future__ import annotations

from enum import StrEnum


class Quantity(StrEnum):
    V_L1 = "voltage_l1_v"
    V_L2 = "voltage_l2_v"
    V_L3 = "voltage_l3_v"
    V_LN_AVG = "voltage_ln_avg_v"
    V_L12 = "voltage_l1_l2_v"
    V_L23 = "voltage_l2_l3_v"
    V_L31 = "voltage_l3_l1_v"
    V_LL_AVG = "voltage_ll_avg_v"
    I_L1 = "current_l1_a"
    I_L2 = "current_l2_a"
    I_L3 = "current_l3_a"
    I_AVG = "current_avg_a"
    I_SUM = "current_sum_a"
    I_N = "current_neutral_a"
    P_L1 = "power_l1_w"
    P_L2 = "power_l2_w"
    P_L3 = "power_l3_w"
    P_TOTAL = "power_w"
    S_L1 = "apparent_power_l1_va"
    S_L2 = "apparent_power_l2_va"
    S_L3 = "apparent_power_l3_va"
    S_TOTAL = "apparent_power_va"
    Q_L1 = "reactive_power_l1_var"
    Q_L2 = "reactive_power_l2_var"
    Q_L3 = "reactive_power_l3_var"
    Q_TOTAL = "reactive_power_var"
    PF_L1 = "power_factor_l1"
    PF_L2 = "power_factor_l2"
    PF_L3 = "power_factor_l3"
    PF_TOTAL = "power_factor"
    ANGLE_L1 = "phase_angle_l1_deg"
    ANGLE_L2 = "phase_angle_l2_deg"
    ANGLE_L3 = "phase_angle_l3_deg"
    ANGLE_TOTAL = "phase_angle_deg"
    FREQUENCY = "frequency_hz"
    THD_V_L1 = "voltage_thd_l1_pct"
    THD_V_L2 = "voltage_thd_l2_pct"
    THD_V_L3 = "voltage_thd_l3_pct"
    THD_V_AVG = "voltage_thd_avg_pct"
    IMPORT_WH = "import_wh"
    EXPORT_WH = "export_wh"
    TOTAL_WH = "total_wh"
    IMPORT_VARH = "import_varh"
    EXPORT_VARH = "export_varh"
    TOTAL_VARH = "total_varh"
    IMPORT_WH_L1 = "import_l1_wh"
    IMPORT_WH_L2 = "import_l2_wh"
    IMPORT_WH_L3 = "import_l3_wh"
    EXPORT_WH_L1 = "export_l1_wh"
    EXPORT_WH_L2 = "export_l2_wh"
    EXPORT_WH_L3 = "export_l3_wh"
    TOTAL_WH_L1 = "total_l1_wh"
    TOTAL_WH_L2 = "total_l2_wh"
    TOTAL_WH_L3 = "total_l3_wh"

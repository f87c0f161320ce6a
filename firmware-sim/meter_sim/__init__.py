"""Simulated Modbus energy meters (Eastron SDM120/SDM630, SunSpec) for tests and demos."""

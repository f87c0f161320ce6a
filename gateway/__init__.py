"""The edge daemon: polls meters over Modbus, signs readings, buffers and forwards them."""

"""Ingest: MQTT in → verify → store → ack out (docs/mqtt.md).

:mod:`backend.ingest.pipeline` judges and stores one readings message; :mod:`backend.ingest.receiver`
is its MQTT side (persistent session, manual PUBACK after commit, acks published per gateway).
"""

from backend.ingest.pipeline import Ingest, IngestStats, Prepared
from backend.ingest.receiver import BackendMqttSettings, BackendSettings, Receiver

__all__ = ["BackendMqttSettings", "BackendSettings", "Ingest", "IngestStats", "Prepared", "Receiver"]

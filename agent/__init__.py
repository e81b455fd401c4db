"""Lokaal Meten edge agent: sensors in, durable MQTT out."""

__version__ = "0.1.0"

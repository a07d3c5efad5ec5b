"""SIEM forwarding: alerts and events to a Splunk-compatible HEC and to syslog over TLS,
through a durable retry queue per sink."""

from collector.forward.config import ForwardConfig, ForwardConfigError, parse_config
from collector.forward.forwarder import SinkMetrics
from collector.forward.forwarding import Forwarding
from collector.forward.records import flat_alert

__all__ = [
    "ForwardConfig",
    "ForwardConfigError",
    "Forwarding",
    "SinkMetrics",
    "flat_alert",
    "parse_config",
]

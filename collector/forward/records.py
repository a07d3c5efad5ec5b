"""Pure: flat events and alerts to a HEC record or an RFC 5424 syslog message, within limits.

Event values come from agents, so every string is treated as hostile: it is made valid
UTF-8, values are capped so a record always fits its sink's limit, and RFC 5424 header
fields and structured-data values are restricted or escaped as the RFC says.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

ALERT, EVENT = "alert", "event"
# 32473 is the enterprise number RFC 5612 reserves for documentation; operators who own a
# number would put it here; SIEM parsers key on the SD-ID, so it does not vary.
SD_ID = "shadowai@32473"
# Kept, in this order, when even shortened values do not fit.
_CORE = (
    "@timestamp", "event.kind", "event.dataset", "event.action", "host.name", "agent.id",
    "rule.id", "rule.name", "log.level", "message", "file.path", "file.hash.sha256",
)  # fmt: skip
_TRUNCATED = "shadowai.truncated"
_MAX_LIST = 64
# Sigma levels to RFC 5424 severities (2 critical .. 6 informational).
_SEVERITY = {"critical": 2, "high": 3, "medium": 4, "low": 5, "informational": 6}
_BOM = b"\xef\xbb\xbf"  # RFC 5424 6.4: a UTF-8 MSG starts with the byte order mark


def flat_alert(
    *,
    rule_id: str,
    rule_title: str,
    level: str,
    agent_id: str,
    host_name: str,
    summary: str,
    event_seq: int,
    at: datetime,
) -> dict[str, object]:
    """An alert as a flat event with ECS names, for the same formatters as events."""
    return {
        "@timestamp": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "event.kind": ALERT,
        "event.dataset": "shadowai.alert",
        "rule.id": rule_id,
        "rule.name": rule_title,
        "log.level": level,
        "agent.id": agent_id,
        "host.name": host_name,
        "message": summary,
        "event.sequence": event_seq,
    }


def clean(value: object) -> object:
    """A JSON-safe copy: valid Unicode text, finite floats, lists of clean items."""
    if isinstance(value, str):
        return _valid_unicode(value)
    if isinstance(value, bool | int) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list | tuple):
        return [clean(item) for item in value]
    if isinstance(value, Mapping):
        return {_valid_unicode(str(k)): clean(v) for k, v in value.items()}
    return _valid_unicode(str(value))


def _valid_unicode(text: str) -> str:
    # Undecodable file-name bytes arrive as lone surrogates (surrogateescape); each becomes
    # one U+FFFD. Other lone surrogates are encoded as they are and replaced likewise.
    try:
        text.encode("utf-8")
        return text  # the common case: already valid
    except UnicodeEncodeError:
        pass
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "replace")


def _size(event: Mapping[str, object]) -> int:
    return len(json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode())


def _capped(value: object, chars: int) -> object:
    if isinstance(value, str) and len(value) > chars:
        return value[:chars] + "…"
    if isinstance(value, list):
        return [_capped(item, chars) for item in value[:_MAX_LIST]]
    return value


def fit(event: Mapping[str, object], max_bytes: int) -> dict[str, object]:
    """The clean event, shortened until its compact JSON is at most `max_bytes` (>= 64).

    Long values are cut first; if that is not enough, only the core fields are kept, each
    only while it fits. A shortened event says so in `shadowai.truncated`.
    """
    whole = {_valid_unicode(str(k)): clean(v) for k, v in event.items()}
    if _size(whole) <= max_bytes:
        return whole
    chars = max_bytes // 4
    while chars >= 64:
        cut = {k: _capped(v, chars) for k, v in whole.items()} | {_TRUNCATED: True}
        if _size(cut) <= max_bytes:
            return cut
        chars //= 2
    kept: dict[str, object] = {_TRUNCATED: True}
    for key in _CORE:
        if key in whole:
            candidate = kept | {key: _capped(whole[key], 64)}
            if _size(candidate) <= max_bytes:
                kept = candidate
    return kept


def event_time(event: Mapping[str, object], default: float) -> float:
    """Seconds since the epoch of the event's @timestamp, else `default`."""
    stamp = event.get("@timestamp")
    if not isinstance(stamp, str):
        return default
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return default
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def hec_record(
    event: Mapping[str, object],
    *,
    kind: str,
    now_s: float,
    source: str,
    index: str | None = None,
    max_event_bytes: int = 65_536,
) -> bytes:
    """One HEC event object: time, host, source, sourcetype (and index), event."""
    body = fit(event, max_event_bytes)
    host = body.get("host.name")
    record: dict[str, Any] = {
        "time": round(event_time(body, now_s), 3),
        "host": host if isinstance(host, str) and host else "unknown",
        "source": _valid_unicode(source),
        "sourcetype": f"shadowai:{kind}",
        "event": body,
    }
    if index:
        record["index"] = _valid_unicode(index)
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


def header_field(text: str, max_len: int) -> str:
    """An RFC 5424 header field: PRINTUSASCII (33-126) only, at most `max_len`, or NILVALUE."""
    printable = "".join(ch if 33 <= ord(ch) <= 126 else "_" for ch in text)[:max_len]
    return printable or "-"


def sd_name(text: str) -> str:
    """An SD-NAME: 1-32 PRINTUSASCII characters except '=', space, ']' and '"'."""
    allowed = "".join(ch if 33 <= ord(ch) <= 126 and ch not in '= ]"' else "_" for ch in text)
    return allowed[:32] or "_"


def sd_value(text: str) -> str:
    """A PARAM-VALUE: '"', '\\' and ']' escaped with a backslash (RFC 5424 6.3.3)."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _timestamp(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def severity(event: Mapping[str, object], kind: str) -> int:
    if kind != ALERT:
        return 6
    return _SEVERITY.get(str(event.get("log.level", "")).lower(), 4)


def syslog_message(
    event: Mapping[str, object],
    *,
    kind: str,
    now_s: float,
    facility: int,
    app_name: str,
    structured: bool,
    max_bytes: int = 8192,
) -> bytes:
    """One RFC 5424 message (no framing), at most `max_bytes` (>= 1024) long."""
    raw_host = event.get("host.name")
    dataset = str(event.get("event.dataset", "")).removeprefix("shadowai.")
    seconds = event_time(event, now_s) if _in_range(event_time(event, now_s)) else now_s
    header = " ".join(
        [
            f"<{facility * 8 + severity(event, kind)}>1",
            _timestamp(seconds),
            header_field(_valid_unicode(raw_host) if isinstance(raw_host, str) else "", 255),
            header_field(app_name, 48),
            "-",
            header_field(ALERT if kind == ALERT else dataset, 32),
        ]
    ).encode()
    room = max_bytes - len(header)
    if not structured:
        return header + b" - " + _BOM + _json(fit(event, room - 3 - len(_BOM)))
    text = str(clean(event.get("message") or event.get("file.path") or dataset))[:256]
    msg = _BOM + text.encode()
    # An SD-PARAM is at most twice its JSON pair (escapes double a character at most), so
    # half of what is left after the brackets, the SD-ID and the MSG always suffices.
    sd = _structured(fit(event, max(64, (room - 4 - len(SD_ID) - len(msg)) // 2)))
    return header + b" " + sd + b" " + msg


def _in_range(seconds: float) -> bool:
    return 0 <= seconds < 253402300800  # RFC 5424 timestamps are four-digit years


def _json(event: Mapping[str, object]) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


def _structured(event: Mapping[str, object]) -> bytes:
    params = []
    for key, value in event.items():
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list | dict):
            # One parameter holding the JSON array keeps the size within twice the JSON's.
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        else:
            text = str(value)
        params.append(f'{sd_name(key)}="{sd_value(text)}"')
    return ("[" + " ".join([SD_ID, *params]) + "]").encode()


def frame(message: bytes) -> bytes:
    """RFC 6587 octet counting: MSG-LEN SP SYSLOG-MSG."""
    return str(len(message)).encode() + b" " + message

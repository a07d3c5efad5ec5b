"""The agent-collector contract: generated protobuf (v1/), envelopes, events and tokens."""

# Trailing metadata on PERMISSION_DENIED when the agent's key is revoked: stop sending.
REVOKED_METADATA = "shadowai-revoked"
# gRPC's own pushback trailer: milliseconds to wait before retrying (RESOURCE_EXHAUSTED,
# UNAVAILABLE).
RETRY_PUSHBACK_METADATA = "grpc-retry-pushback-ms"

"""Exports of the fleet inventory (CycloneDX ML-BOM)."""

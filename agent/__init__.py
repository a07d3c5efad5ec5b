"""The shadowai endpoint agent: finds local AI models and inference processes."""

__version__ = "0.1.0"

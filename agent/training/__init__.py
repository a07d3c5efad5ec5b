"""Training the process classifier: capture, dataset, fit and evaluation.

Not part of the agent's wheel: the agent ships only agent/detect/classifier.onnx and .json.
"""

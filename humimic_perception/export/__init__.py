"""Offline perception tools: the MediaPipe TFLite -> ONNX model export."""

"""Bringup: the node graph, the launch-free runner, the demo and the URDF generation (may import every package)."""

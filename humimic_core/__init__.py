"""Shared pieces of humimic: the robot config, package paths, stamps and the node graph."""

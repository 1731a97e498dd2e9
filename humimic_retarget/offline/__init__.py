"""Offline retargeting tools: calibration, fitting, forward model, pose playback, synthetic pairs."""

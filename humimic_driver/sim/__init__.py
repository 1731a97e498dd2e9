"""Simulation: the servo emulator, the emulated bus (pty) and fault injection."""

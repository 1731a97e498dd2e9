"""Dynamixel Protocol 2.0 driver, its packet layer and the emulated servo bus."""

"""The face twin: the robot's face rendered from its joint states (the hardware-free robot-face camera)."""

"""Stand-ins for the perception stage's hardware: the face twin, the robot's face rendered from its
joint states for a robot-face camera that is not there."""

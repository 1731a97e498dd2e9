"""Expression-to-actuator retargeting: action units and head pose to joint targets."""

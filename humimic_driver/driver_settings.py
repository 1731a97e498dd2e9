"""Tuning of the Dynamixel driver: one dataclass whose fields are the ROS parameters of the
dynamixel_driver node (defaults and descriptions here; values in config/humimic.yaml)."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Dict, Tuple

from humimic_driver.bus import DEFAULT_RETRIES, DEFAULT_TIMEOUT_MARGIN_S
from humimic_driver.diagnostics import Thresholds

HOT_ACTIONS = ("reduce", "neutral", "none")


def _param(default, doc: str):
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class DriverSettings:
    """Driver tuning; each field is a ROS parameter of the dynamixel_driver node (config/humimic.yaml)."""

    command_timeout: float = _param(1.0, "s without /joint_commands before neutral is written once")
    torque_off_on_shutdown: bool = _param(True, "disable torque after moving to neutral on shutdown "
                                                "(false: servos keep holding neutral)")
    shutdown_timeout: float = _param(3.0, "s to wait on shutdown for the joints to reach neutral")
    require_all_servos: bool = _param(True, "refuse to start unless every servo answers (false: start with "
                                            "the missing ones stale and keep pinging them)")
    startup_attempts: int = _param(5, "start-ups of one servo while only its replies were missing or corrupt "
                                      "(a busy bus or USB adapter) before it counts as not answering")
    homing_velocity: float = _param(0.5, "rad/s of the slow moves to neutral at start-up, after a recovery "
                                         "and on shutdown (the servos' Profile Velocity)")
    max_velocity: float = _param(3.0, "rad/s cap of every goal written, for joints without a constraints.velocity "
                                      "entry in the robot config (never above the servo model's limit)")
    max_acceleration: float = _param(40.0, "rad/s^2 cap of every goal written, for joints without a "
                                           "constraints.acceleration entry in the robot config")
    neutral_velocity: float = _param(0.8, "rad/s of the glide to neutral when /joint_commands stop")
    homing_timeout: float = _param(5.0, "s after which a slow move ends even if the joint has not arrived")
    retries: int = _param(DEFAULT_RETRIES, "retries of one-servo transactions (ping, read, write) on timeout "
                                           "or CRC error")
    read_retries: int = _param(1, "retries of a sync read for the servos whose reply was missing or corrupt, "
                                  "while they fit in the state period")
    reply_timeout_margin_ms: float = _param(DEFAULT_TIMEOUT_MARGIN_S * 1e3, "ms added to the computed reply time "
                                                                           "of every transaction")
    stale_after: float = _param(0.5, "s without a state reply (over at least 3 failed reads) after which a "
                                     "servo is stale: not read, not driven, re-pinged")
    reping_backoff_min: float = _param(0.25, "s before the first re-ping of a stale servo; doubles per failure")
    reping_backoff_max: float = _param(4.0, "longest s between re-pings of a stale servo")
    reopen_backoff_min: float = _param(0.2, "s before the first attempt to reopen a lost port; doubles")
    reopen_backoff_max: float = _param(2.0, "longest s between attempts to reopen a lost port")
    reboot_on_hardware_error: bool = _param(True, "reboot a servo that reports a hardware error, then restore "
                                                  "torque and position")
    reboot_backoff: float = _param(1.0, "s from a hardware error to the reboot; doubles with each reboot "
                                        "of the same servo")
    max_reboots: int = _param(3, "reboots per servo per run; after that it stays off (ERROR diagnostic)")
    cool_down_temperature: float = _param(60.0, "degC an overheated servo (its overheating error; the servo has "
                                                "turned its torque off) must cool below before it is rebooted")
    temperature_warn: float = _param(55.0, "degC: WARN diagnostic, and the hot_action applies")
    temperature_error: float = _param(65.0, "degC: ERROR diagnostic (the servo's own limit is higher)")
    hot_action: str = _param("reduce", "what a servo at temperature_warn or above does: reduce (goals pulled "
                                       "toward neutral by hot_motion_scale), neutral, or none")
    hot_motion_scale: float = _param(0.5, "reduce: goal = neutral + scale * (goal - neutral)")
    voltage_warn_margin: float = _param(0.3, "V: WARN when the input voltage is this close to the model's "
                                             "voltage limits")
    comm_error_warn: float = _param(0.02, "failed fraction of a servo's last 200 transactions for WARN")
    comm_error_error: float = _param(0.25, "failed fraction of a servo's last 200 transactions for ERROR")

    def __post_init__(self) -> None:
        for name in ("command_timeout", "shutdown_timeout", "homing_velocity", "max_velocity", "max_acceleration",
                     "neutral_velocity", "homing_timeout", "stale_after",
                     "reping_backoff_min", "reping_backoff_max", "reopen_backoff_min", "reopen_backoff_max"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"parameter {name} must be > 0, got {getattr(self, name)}")
        for name in ("retries", "read_retries", "reply_timeout_margin_ms", "reboot_backoff", "max_reboots"):
            if getattr(self, name) < 0:
                raise ValueError(f"parameter {name} must be >= 0, got {getattr(self, name)}")
        if self.startup_attempts < 1:
            raise ValueError(f"parameter startup_attempts must be >= 1, got {self.startup_attempts}")
        if self.hot_action not in HOT_ACTIONS:
            raise ValueError(f"parameter hot_action must be one of {', '.join(HOT_ACTIONS)}, got {self.hot_action!r}")
        if not 0.0 <= self.hot_motion_scale <= 1.0:
            raise ValueError(f"parameter hot_motion_scale must be in 0..1, got {self.hot_motion_scale}")

    @classmethod
    def descriptions(cls) -> Dict[str, Tuple[object, str]]:
        """name -> (default, description) of every setting."""
        return {f.name: (f.default, f.metadata["doc"]) for f in fields(cls)}

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(self.temperature_warn, self.temperature_error, self.voltage_warn_margin,
                          self.comm_error_warn, self.comm_error_error)

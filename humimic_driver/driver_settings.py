"""Settings of the Dynamixel driver: dataclasses whose fields are the ROS parameters of the
dynamixel_driver node (humimic_core.settings: defaults, descriptions, ranges here; values in
config/humimic.yaml)."""
from __future__ import annotations

from dataclasses import dataclass

from humimic_core.control_tables import BAUD_CODES
from humimic_core.processes import realtime_priority_setting
from humimic_core.robot_config import DEFAULT_MAX_ACCELERATION, DEFAULT_MAX_VELOCITY
from humimic_core.settings import Settings, setting
from humimic_driver.bus import DEFAULT_RETRIES, DEFAULT_TIMEOUT_MARGIN_S
from humimic_driver.diagnostics import Thresholds

HOT_ACTIONS = ("reduce", "neutral", "none")
#: Share of the state period a state read may spend on retries.
READ_BUDGET = 0.5


@dataclass(frozen=True)
class DriverNodeSettings(Settings):
    """The dynamixel_driver node's own parameters: the robot, the bus, the read rates."""

    robot_config: str = setting("", "robot config YAML; '' = the package's config/robot_face.yaml")
    port: str = setting("", "serial port of the servo bus; '' = bus.port of the robot config")
    baud_rate: int = setting(0, "bus baud rate (57600 .. 4000000, as bus.baud_rate); 0 = bus.baud_rate of the robot "
                                "config", (0, 4000000))
    state_rate: float = setting(50.0, "Hz of sync reads of position/velocity/current -> /joint_states", (0.1, 1000))
    health_rate: float = setting(2.0, "Hz of sync reads of voltage, temperature and hardware error, and of "
                                      "recovery steps (re-ping, reboot)", (0.1, 1000))
    realtime_priority: int = realtime_priority_setting(10, "the driver's threads, so bus writes do not wait behind "
                                                           "other processes on a busy CPU")
    reads_between_commands: bool = setting(True, "put off a state read that the next /joint_commands is expected "
                                                 "to arrive during, to right after that command's write (at most "
                                                 "one read in a row)")

    @property
    def read_budget_s(self) -> float:
        """Seconds a state read may spend on retries (READ_BUDGET of the state period)."""
        return READ_BUDGET / self.state_rate

    def __post_init__(self) -> None:
        for name in ("state_rate", "health_rate"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"parameter {name} must be > 0, got {getattr(self, name)}")
        if self.baud_rate and self.baud_rate not in BAUD_CODES:
            raise ValueError(f"parameter baud_rate: {self.baud_rate} is not a Dynamixel baud rate "
                             f"(one of {', '.join(str(b) for b in sorted(BAUD_CODES))}; 0 = the robot config's)")


@dataclass(frozen=True)
class DriverSettings(Settings):
    """Driver tuning; each field is a ROS parameter of the dynamixel_driver node (config/humimic.yaml),
    all read at start."""

    command_timeout: float = setting(1.0, "s without /joint_commands before neutral is written once", (0, 3600))
    torque_off_on_shutdown: bool = setting(True, "disable torque after moving to neutral on shutdown "
                                                 "(false: servos keep holding neutral)")
    shutdown_timeout: float = setting(3.0, "s to wait on shutdown for the joints to reach neutral", (0, 60))
    require_all_servos: bool = setting(True, "refuse to start unless every servo answers (false: start with "
                                             "the missing ones stale and keep pinging them)")
    startup_attempts: int = setting(5, "start-ups of one servo while only its replies were missing or corrupt "
                                       "(a busy bus or USB adapter) before it counts as not answering", (1, 100))
    homing_velocity: float = setting(0.5, "rad/s of the slow moves to neutral at start-up, after a recovery "
                                          "and on shutdown (the servos' Profile Velocity)", (0, 100))
    max_velocity: float = setting(DEFAULT_MAX_VELOCITY, "rad/s cap of every goal written, for joints without a "
                                  "constraints.velocity entry in the robot config (never above the servo model's "
                                  "limit)", (0, 100))
    max_acceleration: float = setting(DEFAULT_MAX_ACCELERATION, "rad/s^2 cap of every goal written, for joints "
                                      "without a constraints.acceleration entry in the robot config (never above "
                                      "the servo model's largest profile acceleration)", (0, 10000))
    neutral_velocity: float = setting(0.8, "rad/s of the glide to neutral when /joint_commands stop", (0, 100))
    homing_timeout: float = setting(5.0, "s after which a slow move ends even if the joint has not arrived", (0, 600))
    retries: int = setting(DEFAULT_RETRIES, "retries of one-servo transactions (ping, read, write) on timeout "
                                            "or CRC error", (0, 100))
    read_retries: int = setting(1, "retries of a sync read for the servos whose reply was missing or corrupt, "
                                   "while they fit in the state period", (0, 100))
    reply_timeout_margin_ms: float = setting(DEFAULT_TIMEOUT_MARGIN_S * 1e3, "ms added to the computed reply time "
                                                                            "of every transaction", (0, 1000))
    stale_after: float = setting(0.5, "s without a state reply (over at least 3 failed reads) after which a "
                                      "servo is stale: not read, not driven, re-pinged", (0, 60))
    reping_backoff_min: float = setting(0.25, "s before the first re-ping of a stale servo; doubles per failure", (0, 60))
    reping_backoff_max: float = setting(4.0, "longest s between re-pings of a stale servo", (0, 3600))
    reopen_backoff_min: float = setting(0.2, "s before the first attempt to reopen a lost port; doubles", (0, 60))
    reopen_backoff_max: float = setting(2.0, "longest s between attempts to reopen a lost port", (0, 3600))
    reboot_on_hardware_error: bool = setting(True, "reboot a servo that reports a hardware error, then restore "
                                                   "torque and position")
    reboot_backoff: float = setting(1.0, "s from a hardware error to the reboot; doubles with each reboot "
                                         "of the same servo", (0, 3600))
    max_reboots: int = setting(3, "reboots per servo per run; after that it stays off (ERROR diagnostic)", (0, 1000))
    cool_down_temperature: float = setting(60.0, "degC an overheated servo (its overheating error; the servo has "
                                                 "turned its torque off) must cool below before it is rebooted", (0, 150))
    temperature_warn: float = setting(55.0, "degC: WARN diagnostic, and the hot_action applies", (0, 150))
    temperature_error: float = setting(65.0, "degC: ERROR diagnostic (the servo's own limit is higher)", (0, 150))
    hot_action: str = setting("reduce", "what a servo at temperature_warn or above does: reduce (goals pulled "
                                        "toward neutral by hot_motion_scale), neutral, or none")
    hot_motion_scale: float = setting(0.5, "reduce: goal = neutral + scale * (goal - neutral)", (0, 1))
    voltage_warn_margin: float = setting(0.3, "V: WARN when the input voltage is this close to the model's "
                                              "voltage limits", (0, 10))
    comm_error_warn: float = setting(0.02, "failed fraction of a servo's last 200 transactions for WARN", (0, 1))
    comm_error_error: float = setting(0.25, "failed fraction of a servo's last 200 transactions for ERROR", (0, 1))

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

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(self.temperature_warn, self.temperature_error, self.voltage_warn_margin,
                          self.comm_error_warn, self.comm_error_error)

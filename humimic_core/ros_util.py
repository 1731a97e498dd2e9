"""Small rclpy helpers shared by the node shells: parameters with descriptions, QoS, the executor,
the latency trace's batches, spinning."""
from __future__ import annotations

import gc
import os
import signal
import sys
from typing import Any, Callable, Dict, Iterable, Optional, Tuple, Type

import rclpy
from rclpy.signals import SignalHandlerOptions
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.exceptions import InvalidParameterValueException
from rclpy.executors import Executor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy, DurabilityPolicy, qos_profile_sensor_data
from std_msgs.msg import Float64MultiArray

from humimic_core import trace
from humimic_core.processes import realtime_priority
from humimic_core.settings import Settings
from humimic_core.topics import TRACE

#: Images and other per-frame sensor streams: best effort, keep last 5 (REP-2003 sensor data QoS).
SENSOR_QOS = qos_profile_sensor_data
#: Recorders and monitors of sensor streams: best effort (matches any publisher), with a deep
#: history so a briefly busy recorder loses no frame.
RECORDER_SENSOR_QOS = QoSProfile(depth=200, reliability=ReliabilityPolicy.BEST_EFFORT,
                                 history=HistoryPolicy.KEEP_LAST, durability=DurabilityPolicy.VOLATILE)
#: Recorders of commands and states: reliable with a deep history.
RECORDER_RELIABLE_QOS = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE,
                                   history=HistoryPolicy.KEEP_LAST, durability=DurabilityPolicy.VOLATILE)
#: Commands and states: reliable, keep last 10 (compatible with ros2 bag record defaults).
RELIABLE_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                          history=HistoryPolicy.KEEP_LAST, durability=DurabilityPolicy.VOLATILE)

#: Latched topics (/robot_description, /tf_static): reliable, transient local, keep last 1, so a
#: late subscriber (rviz, a recorder) gets the last message.
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)


def declare(node: Node, name: str, default: Any, description: str, read_only: bool = False,
            bounds: Optional[Tuple[float, float]] = None) -> Any:
    """Declare a parameter with a description (read-only where it cannot change at run time, and
    the ``bounds`` of a number as its descriptor's range) and return its value."""
    desc = ParameterDescriptor(description=description, read_only=read_only)
    if bounds is not None and isinstance(default, int):
        desc.integer_range = [IntegerRange(from_value=int(bounds[0]), to_value=int(bounds[1]))]
    elif bounds is not None:
        desc.floating_point_range = [FloatingPointRange(from_value=float(bounds[0]), to_value=float(bounds[1]))]
    return node.declare_parameter(name, default, desc).value


def declare_settings(node: Node, settings: Type[Settings]) -> Dict[str, Any]:
    """Declare every parameter of a settings dataclass (humimic_core.settings) on ``node``; their
    values by name, for ``settings.from_parameters``."""
    return {p.name: declare(node, p.name, p.default, p.description, p.read_only, p.bounds)
            for p in settings.parameters()}


#: Longest wait (s) of the spin loop, so SIGINT/SIGTERM are handled promptly on idle nodes.
def matched_subscriber_nodes(node: Node, publishers: Iterable[Publisher]) -> int:
    """Nodes subscribed to any of the publishers' topics, counted only once the publishers have
    matched every subscription the graph shows (0 while one is still matching)."""
    nodes = set()
    for pub in publishers:
        subscriptions = node.get_subscriptions_info_by_topic(pub.topic_name)
        if pub.get_subscription_count() < len(subscriptions):
            return 0
        nodes.update(f"{s.node_namespace.rstrip('/')}/{s.node_name}" for s in subscriptions)
    return len(nodes)


SPIN_SLICE = 0.2
#: Environment: the executor of run_node, ``events`` (rclpy's EventsExecutor where the installed rclpy
#: has it, else the single-threaded one) or ``single`` (SingleThreadedExecutor).
EXECUTOR_ENV = "HUMIMIC_EXECUTOR"
#: Environment: ``freeze`` (default) moves the objects made at start-up out of the garbage collector's
#: view once the node is built, so its collections on the hot path stay short; ``off`` leaves it.
GC_ENV = "HUMIMIC_GC"


def make_executor(kind: Optional[str] = None) -> Executor:
    """The executor ``kind`` (default: $HUMIMIC_EXECUTOR, else events) names; ``events`` falls back to
    SingleThreadedExecutor where rclpy has no EventsExecutor (before Jazzy)."""
    kind = kind or os.environ.get(EXECUTOR_ENV) or "events"
    if kind not in ("events", "single"):
        raise ValueError(f"{EXECUTOR_ENV} must be events or single, got {kind!r}")
    if kind == "events":
        try:
            from rclpy.experimental import EventsExecutor
        except ImportError:
            return SingleThreadedExecutor()
        return EventsExecutor()
    return SingleThreadedExecutor()


def freeze_garbage(setting: Optional[str] = None) -> bool:
    """With ``freeze`` (default: $HUMIMIC_GC, else freeze): collect once, then freeze what is left,
    so the collector no longer walks the modules, models and node made at start-up; True if frozen."""
    setting = setting or os.environ.get(GC_ENV) or "freeze"
    if setting not in ("freeze", "off"):
        raise ValueError(f"{GC_ENV} must be freeze or off, got {setting!r}")
    if setting == "off":
        return False
    gc.collect()
    gc.freeze()
    return True


#: Seconds a node ending waits for its last trace batch to be acknowledged.
TRACE_FLUSH_TIMEOUT = 1.0


def publish_trace(node: Node, frame_trace: "trace.FrameTrace") -> None:
    """Send the trace's rows in batches on TRACE every trace.TRACE_PERIOD (steady time, so a paused
    simulated clock does not hold them back); run_node sends the rest when the node ends
    (``node.flush_trace``)."""
    publisher = node.create_publisher(Float64MultiArray, TRACE, RELIABLE_QOS)

    def send(hold_ns: int) -> None:
        batch = frame_trace.take(hold_ns)
        if batch is not None:
            publisher.publish(trace.to_msg(batch))

    def flush() -> None:
        """The last rows, acknowledged by the subscribers (up to TRACE_FLUSH_TIMEOUT) before the node
        ends: a node that exits right after publishing can take its last batch with it."""
        send(0)
        publisher.wait_for_all_acked(Duration(seconds=TRACE_FLUSH_TIMEOUT))

    node.create_timer(trace.TRACE_PERIOD, lambda: send(trace.HOLD_NS), clock=Clock(clock_type=ClockType.STEADY_TIME))
    frame_trace.when_full = lambda: send(trace.HOLD_NS)
    node.flush_trace = flush  # type: ignore[attr-defined]


def use_realtime_priority(node: Node, priority: int) -> bool:
    """Put the node's process under SCHED_FIFO at ``priority`` (processes.realtime_priority; 0 = leave
    it as it is) and say in one log line what it got; True if it runs so. run_node calls it once the
    node is built (its executor's and DDS's threads exist by then)."""
    if not priority:
        return False
    refused = realtime_priority(priority)
    node.get_logger().info(f"real-time priority {priority} refused ({refused}): normal scheduling"
                           if refused else f"real-time priority {priority} (SCHED_FIFO)")
    return refused is None


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _build(factory: Callable[[], Node], fatal: Tuple[Type[BaseException], ...], exit_code: int,
           name: str) -> Node:
    try:
        return factory()
    except fatal as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        raise SystemExit(exit_code) from None


def request_exit(node: Node, code: int) -> None:
    """End run_node's spinning with exit ``code`` once the callback returns (a callback that raised
    SystemExit itself would be logged as a failure by the EventsExecutor)."""
    node.exit_code = code  # type: ignore[attr-defined]


def run_node(factory: Callable[[], Node], args: Optional[list] = None,
             fatal: Tuple[Type[BaseException], ...] = (), exit_code: int = 1, name: str = "node") -> None:
    """Init rclpy, build the node, spin until SIGINT/SIGTERM, then let the node clean up.

    An exception of a ``fatal`` type (a bad config, an unusable device) or a parameter value outside
    its descriptor's range ends the process with ``exit_code`` and one line "<name>: <problem>", not
    a traceback.

    The executor is make_executor's; once the node is built the garbage is frozen (freeze_garbage)
    and, for a node with a ``realtime_priority`` (a realtime_priority_setting parameter), the process
    runs under SCHED_FIFO at it where it may (use_realtime_priority; the node's constructor does not,
    so a node built inside another process, a test's, leaves that process's scheduling alone).
    A callback ends the process with request_exit. A node may define ``shutdown()``; it is called
    once before the node is destroyed (then its last trace rows are sent), also on SIGTERM, with
    further SIGINT/SIGTERM ignored, so drivers can leave hardware in a safe state.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    node = None
    try:
        executor = make_executor()
        node = _build(factory, fatal + (InvalidParameterValueException,), exit_code, name)
        executor.add_node(node)
        freeze_garbage()
        use_realtime_priority(node, getattr(node, "realtime_priority", 0))
        # spin in slices: with rclpy's own signal handling off, a signal is only seen between waits
        while rclpy.ok() and getattr(node, "exit_code", None) is None:
            executor.spin_once(timeout_sec=SPIN_SLICE)
        if getattr(node, "exit_code", None) is not None:
            raise SystemExit(node.exit_code)
    except KeyboardInterrupt:
        pass
    finally:
        # a second Ctrl-C must not cut the node's safe shutdown short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if node is not None:
            shutdown = getattr(node, "shutdown", None)
            if callable(shutdown):
                shutdown()
            flush_trace = getattr(node, "flush_trace", None)
            if callable(flush_trace) and rclpy.ok():
                flush_trace()
            node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()

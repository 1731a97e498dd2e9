"""Experiments: rosbag2 recording and replay, offline re-runs, imitation metrics, reports, dataset export."""

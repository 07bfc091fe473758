"""Agents: the policy side (agent protocol and backends), rollouts, trajectories and the trainer."""

from rlvr.agents.base import Agent, Generation, OracleAgent, RandomAgent, ScriptedAgent, generate
from rlvr.agents.trajectory import ReproRecord, Trajectory, TrajectoryWriter, Turn, read_trajectories

__all__ = [
    "Agent", "Generation", "OracleAgent", "RandomAgent", "ScriptedAgent", "generate",
    "ReproRecord", "Trajectory", "TrajectoryWriter", "Turn", "read_trajectories",
]

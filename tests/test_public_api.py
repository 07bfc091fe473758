"""The public surface is deliberate: a change to __all__ must change this test too."""

import rlvr
import rlvr.agents
import rlvr.envs


def test_top_level():
    assert sorted(rlvr.__all__) == ["EnvInfo", "__version__", "list_envs"]
    assert {e.id for e in rlvr.list_envs()} == {
        "rlvr/GuessNumber-v0", "rlvr/DeepSearch-v0", "rlvr/ToolCall-v0", "rlvr/SWE-v0"}


def test_envs_surface():
    assert sorted(rlvr.envs.__all__) == sorted([
        "AgentEnv", "ChatMessages", "Message", "TextAction", "TurnOutcome", "render_tool_prompt",
        "HermesParser", "JSONParser", "ParsedAction", "ToolCall", "ToolCallParser",
        "Tool", "ToolResult", "ToolSet", "tool", "truncate_text"])
    assert all(hasattr(rlvr.envs, n) for n in rlvr.envs.__all__)


def test_agents_surface():
    assert sorted(rlvr.agents.__all__) == sorted([
        "Agent", "Generation", "OracleAgent", "RandomAgent", "ScriptedAgent", "generate",
        "ReproRecord", "Trajectory", "TrajectoryWriter", "Turn", "read_trajectories"])
    assert all(hasattr(rlvr.agents, n) for n in rlvr.agents.__all__)

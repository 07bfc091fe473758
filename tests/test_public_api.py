"""The public surface is deliberate: a change to __all__ must change this test too."""

import rlvr
import rlvr.agents
import rlvr.envs
import rlvr.rewards


def test_top_level():
    assert sorted(rlvr.__all__) == ["EnvInfo", "__version__", "clear_caches", "list_envs"]
    assert {e.id for e in rlvr.list_envs()} == {
        "rlvr/GuessNumber-v0", "rlvr/DeepSearch-v0", "rlvr/ToolCall-v0", "rlvr/SWE-v0", "rlvr/Grounding-v0",
        "rlvr/TextWorld-v0", "rlvr/ALFWorld-v0"}


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


def test_rewards_surface():
    assert sorted(rlvr.rewards.__all__) == ["carr", "gated", "info_gain", "matchtir", "outcome"]
    expected = {
        "outcome": ["normalize_answer", "exact_match", "token_f1", "extract_exact_answer", "format_ok",
                    "format_reward"],
        "carr": ["Evidence", "Rubric", "RubricResult", "extract_citations", "identify_entities_exact", "spans_cover",
                 "support_exact", "connected_rubrics", "rubric_reward_exact", "CaRRJudge", "rubric_reward_judge",
                 "parse_json_object", "cgrpo_reward", "cgrpo_group", "CGRPOReward", "IDENTIFY_PROMPT",
                 "SUPPORT_PROMPT"],
        "matchtir": ["GoldCall", "MatchMethod", "MatchTIR", "assignment_plan", "call_rewards", "greedy_assignment",
                     "hungarian_assignment", "jaccard", "similarity", "similarity_matrix", "sinkhorn_assignment",
                     "turn_rewards", "values_equal"],
        "gated": ["SubmissionOutcome", "OutcomeLevels", "RewardTier", "GatedResult", "GatedRewardAccumulation",
                  "gated_accumulation", "gra", "dra", "swe_tiers", "turn_components"],
        "info_gain": ["InformationGain", "answer_logprobs_cached", "answer_logprobs_naive", "information_gain"],
    }
    assert sorted(expected) == sorted(rlvr.rewards.__all__)
    for name, names in expected.items():
        module = getattr(rlvr.rewards, name)
        assert sorted(module.__all__) == sorted(names), name
        assert all(hasattr(module, n) for n in module.__all__), name


def test_trainer_maths_surface():
    """The trainer's pure maths modules: dead exports stay out."""
    from rlvr.agents.trainer import advantages, batch, losses, records

    assert "outcome_returns" not in advantages.__all__ and "token_logprobs" not in losses.__all__
    assert {"micro_batch_loss", "MicroBatchLoss"} <= set(losses.__all__)
    assert {"step_advantages", "StepAdvantages"} <= set(batch.__all__) and "step_metrics" in records.__all__
    for module in (advantages, batch, losses, records):
        assert all(hasattr(module, n) for n in module.__all__), module.__name__

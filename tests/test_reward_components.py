"""Declared reward components: every environment lists the components it emits, and every name a user
gives (env ``reward_weights``, ``rlvr run -e reward_weights=...``, the trainer's component fields)
is checked against that list with a did-you-mean."""

from __future__ import annotations

import gymnasium as gym
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rlvr
from rlvr.agents import OracleAgent, RandomAgent
from rlvr.agents.rollout import rollout
from rlvr.agents.trainer.config import TrainConfig
from rlvr.cli import main
from rlvr.envs import AgentEnv
from rlvr.errors import ConfigError


def env_class(env_id: str) -> type[AgentEnv]:
    return gym.spec(env_id).entry_point.info.load()


def emitted_components(env_id: str, env_kwargs: dict, episodes: int) -> set[str]:
    """Component names over oracle episodes and random (often malformed) episodes."""
    names: set[str] = set()
    for agent in (OracleAgent(), RandomAgent(seed=0)):
        for traj in rollout(env_id, agent, episodes=episodes, seed=0, concurrency=2, env_kwargs=env_kwargs):
            for turn in traj.turns:
                names |= set(turn.reward_components)
    return names


@pytest.mark.parametrize("env_id,env_kwargs", [
    ("rlvr/GuessNumber-v0", {}),
    ("rlvr/DeepSearch-v0", {}),
    ("rlvr/ToolCall-v0", {}),
    ("rlvr/ToolCall-v0", {"source": "synthetic"}),
])
def test_declared_components_are_exactly_the_emitted_ones(env_id, env_kwargs):
    """Oracle and random episodes emit every declared component and nothing undeclared, so the
    declaration cannot drift from the code in either direction."""
    declared = env_class(env_id).reward_components
    assert len(set(declared)) == len(declared) and {"format", "tool_validity"} <= set(declared)
    assert emitted_components(env_id, env_kwargs, episodes=6) == set(declared)


@pytest.mark.docker
def test_swe_declared_components_cover_the_emitted_ones():
    from rlvr.envs.swe.pool import close_shared_pools
    from rlvr.envs.swe.testing import require_docker

    require_docker()
    try:
        for accumulation in ("gated", "direct"):
            emitted = emitted_components("rlvr/SWE-v0", {"accumulation": accumulation, "max_turns": 6}, episodes=1)
            declared = set(env_class("rlvr/SWE-v0").reward_components)
            assert emitted <= declared
            # ``gate`` is the one component an option turns off; everything else shows up either way
            assert declared - emitted == (set() if accumulation == "gated" else {"gate"})
    finally:
        close_shared_pools()


def test_every_registered_env_declares_its_own_components():
    for info in rlvr.list_envs():
        cls = info.load()
        assert "reward_components" in cls.__dict__, f"{info.id} inherits the base declaration"
        assert cls.reward_components[:2] == ("format", "tool_validity")


@pytest.mark.parametrize("info", rlvr.list_envs(), ids=lambda i: i.id)
def test_unknown_reward_weight_fails_at_env_construction_with_a_suggestion(info):
    """SWE included: the check runs before any sandbox is touched."""
    cls = info.load()
    right = cls.reward_components[-1]
    wrong = right[:-1]  # a typo: the last letter dropped
    declared = ", ".join(cls.reward_components)
    with pytest.raises(ConfigError) as e:
        gym.make(info.id, reward_weights={wrong: 1.0})
    assert str(e.value) == (f"reward_weights: unknown reward component {wrong!r} (did you mean {right!r}?); "
                            f"{info.id} declares: {declared}")


def test_known_reward_weights_still_apply():
    env = gym.make("rlvr/GuessNumber-v0", reward_weights={"outcome": 2.0})
    env.reset(seed=0, options={"secret": 3})
    _, reward, *_ = env.step("<answer>3</answer>")
    assert reward == 2.0


def test_reward_weights_must_be_a_mapping():
    """Direct construction (no registry in between) is checked by the base class itself."""
    from rlvr.envs.guess_number import GuessNumberEnv

    with pytest.raises(ConfigError, match=r"reward_weights must be a mapping .* got 'outcome'"):
        GuessNumberEnv(reward_weights="outcome")
    with pytest.raises(ConfigError, match=r"reward_weights: unknown reward component 'outcom'"):
        GuessNumberEnv(reward_weights={"outcom": 1.0})


def test_rlvr_run_checks_reward_weights(tmp_path, capsys):
    code = main(["run", "rlvr/GuessNumber-v0", "--agent", "random", "--episodes", "1", "--quiet",
                 "--out", str(tmp_path), "-e", 'reward_weights={"outcom": 2.0}'])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown reward component 'outcom' (did you mean 'outcome'?); rlvr/GuessNumber-v0 declares:" in err
    assert not (tmp_path / "trajectories.jsonl").exists() or (tmp_path / "trajectories.jsonl").read_text() == ""


@pytest.mark.parametrize("field,value", [
    ("gate_priority", ["outcom"]),
    ("outcome_components", ["outcom"]),
    ("reward_weights", {"outcom": 1.0}),
])
def test_trainer_component_fields_are_checked(field, value):
    kwargs = {field: value}
    if field == "gate_priority":
        kwargs.update(reward="gated", gate_thresholds=[1.0])
    with pytest.raises(ConfigError) as e:
        TrainConfig(**kwargs)
    assert str(e.value) == (f"{field}: unknown reward component 'outcom' (did you mean 'outcome'?); "
                            "rlvr/GuessNumber-v0 declares: format, tool_validity, progress, outcome")


def test_trainer_env_kwargs_reward_weights_are_checked_against_that_env():
    with pytest.raises(ConfigError, match=r"env_kwargs\['reward_weights'\]: unknown reward component 'evidance' "
                                          r"\(did you mean 'evidence'\?\); rlvr/DeepSearch-v0 declares"):
        TrainConfig(env="rlvr/DeepSearch-v0", env_kwargs={"reward_weights": {"evidance": 1.0}})
    # a name valid for one env is checked against the env in use
    with pytest.raises(ConfigError, match="rlvr/GuessNumber-v0 declares"):
        TrainConfig(env="rlvr/GuessNumber-v0", outcome_components=["evidence"])
    c = TrainConfig(env="rlvr/SWE-v0", reward="gated", gate_priority=["outcome", "gate"], gate_thresholds=[0.5, 0.0],
                    reward_weights={"valid_call": 0.5})
    assert c.gate_priority == ["outcome", "gate"]


NAMES = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)


@settings(max_examples=200, deadline=None)
@given(names=st.lists(NAMES, max_size=5))
def test_check_accepts_exactly_the_declared_names(names):
    cls = env_class("rlvr/DeepSearch-v0")
    unknown = [n for n in names if n not in cls.reward_components]
    if unknown:
        with pytest.raises(ConfigError, match="unknown reward component") as e:
            cls.check_reward_components(names, "somewhere")
        assert str(e.value).startswith(f"somewhere: unknown reward component {unknown[0]!r}")
        assert str(e.value).endswith("rlvr/DeepSearch-v0 declares: " + ", ".join(cls.reward_components))
    else:
        cls.check_reward_components(names, "somewhere")
    cls.check_reward_components([n for n in names if n in cls.reward_components] + list(cls.reward_components))

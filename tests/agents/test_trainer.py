"""The training loop on a real environment (rlvr/GuessNumber-v0) with tiny CPU policies."""

import json

import numpy as np
import pytest
import torch

from _trainer_helpers import answer_policy, smollm2_tokenizer, tiny_llama
from rlvr.agents.trainer.backends import HFBackend
from rlvr.agents.trainer.batch import group_advantages, reward_tables
from rlvr.agents.trainer.config import Advantage, TrainConfig
from rlvr.agents.trainer.sequences import TemplateRenderer, broadcast_turn_values, build_sequence
from rlvr.agents.trainer.trainer import collect_groups, first_prediction, ppo_update, task_seeds, train, train_main
from rlvr.errors import ConfigError

ENV_KW = {"low": 1, "high": 2, "max_turns": 2}


@pytest.fixture(scope="module")
def tok():
    return smollm2_tokenizer()


def _config(tmp_path, **kw):
    base = dict(env="rlvr/GuessNumber-v0", env_kwargs=ENV_KW, steps=1, tasks_per_step=2, group_size=4,
                max_new_tokens=7, output_dir=str(tmp_path / "run"), lr=1e-2, micro_batch_size=3)
    base.update(kw)
    return TrainConfig(**base)


def _fixed_batch(config, model, tok):
    backend = HFBackend(model, tok, max_new_tokens=config.max_new_tokens, temperature=1.0, top_p=1.0,
                        batch_size=16, max_context=2048, seed=5)
    trajs = collect_groups(config, backend.agent, task_seeds(config, 0), config.env_kwargs)
    seqs = [build_sequence(t, TemplateRenderer(tok)) for t in trajs]
    tables = reward_tables(trajs, config)
    adv = np.concatenate([group_advantages(tables, slice(g * 4, g * 4 + 4), config, trajs) for g in range(2)])
    return trajs, seqs, [broadcast_turn_values(s, adv[i]) for i, s in enumerate(seqs)]


def test_one_update_changes_weights_and_lowers_the_loss_on_a_fixed_batch(tmp_path, tok):
    config = _config(tmp_path)
    model = answer_policy(tok)
    trajs, seqs, token_adv = _fixed_batch(config, model, tok)
    rewards = [t.total_reward for t in trajs]
    assert len(set(rewards)) > 1, rewards  # mixed wins and losses: a real learning signal
    assert all(s.prompt_mismatches == [] for s in seqs)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr)
    first = ppo_update(model, opt, seqs, token_adv, config, pad_id=tok.pad_token_id, device=torch.device("cpu"))
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert changed and first["loss/grad_norm"] > 0
    assert first["loss/ratio_mean"] == pytest.approx(1.0, abs=1e-3)  # rollout log-probs match the training pass
    second = ppo_update(model, opt, seqs, token_adv, config, pad_id=tok.pad_token_id, device=torch.device("cpu"))
    assert second["loss/policy"] < first["loss/policy"] - 1e-4


def test_full_train_step_writes_every_record(tmp_path, tok):
    config = _config(tmp_path, kl_coef=0.05, entropy_coef=0.01)
    model = answer_policy(tok)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    res = train(config, model=model, tokenizer=tok)
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters())
    out = tmp_path / "run"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows == res.metrics
    row = rows[0]
    for key in ("reward/mean", "reward/outcome", "reward/format", "reward/progress", "reward/tool_validity",
                "success_rate", "adv/mean", "adv/std", "adv/zero_group_frac", "loss/policy", "loss/kl",
                "loss/entropy", "loss/clip_frac", "perf/rollout_tok_s", "perf/update_tok_s", "perf/peak_mem_mb"):
        assert key in row and np.isfinite(row[key]), key
    assert 0.0 <= row["adv/zero_group_frac"] <= 1.0 and row["perf/peak_mem_mb"] > 0
    assert row["tokens/prompt_mismatch_turns"] == 0
    lines = (out / "trajectories.jsonl").read_text().splitlines()
    assert len(lines) == config.tasks_per_step * config.group_size
    groups = {}
    for line in lines:
        t = json.loads(line)
        groups.setdefault(t["seed"], set()).add(t["task_id"])
    assert len(groups) == config.tasks_per_step and all(len(v) == 1 for v in groups.values())
    assert (out / "plots" / "training.png").stat().st_size > 10_000
    assert (out / "checkpoints" / "latest").read_text() == "step-000001"


def test_logged_reward_is_the_environments_reward(tmp_path, tok):
    """One reward: with weights the environment applies, reward/mean is the mean of its episode rewards."""
    from rlvr.agents.trajectory import read_trajectories

    config = _config(tmp_path, reward_weights={"progress": 2.0, "format": 0.5, "outcome": 3.0}, plot=False)
    row = train(config, model=answer_policy(tok), tokenizer=tok).metrics[0]
    trajs = list(read_trajectories(tmp_path / "run" / "trajectories.jsonl"))
    assert len(trajs) == 8 and all(t.repro.reward_weights["outcome"] == 3.0 for t in trajs)
    env_rewards = [t.total_reward for t in trajs]
    assert len(set(env_rewards)) > 1 and row["reward/mean"] == pytest.approx(float(np.mean(env_rewards)))
    assert row["reward/std"] == pytest.approx(float(np.std(env_rewards)))
    assert "env_reward/mean" not in row


def test_first_prediction_is_read_from_the_host_masks():
    from rlvr.agents.trainer.sequences import TokenSequence

    def seq(mask):
        return TokenSequence([0] * len(mask), mask, [1] * len(mask), [0.0] * len(mask), [])

    assert first_prediction([seq([0, 0, 0, 1, 1]), seq([0, 0, 0, 0, 1, 1, 0])]) == 2  # logits at 2 predict token 3
    assert first_prediction([seq([1, 1])]) == 0 and first_prediction([seq([0, 0])]) == 0


@pytest.mark.parametrize("extra", [{}, {"warmup_sft_steps": 2, "warmup_sft_lr": 1e-3, "kl_coef": 0.5}],
                         ids=["plain", "warm-start+kl"])
def test_resume_from_checkpoint_gives_the_same_next_step(tmp_path, tok, extra):
    straight = _config(tmp_path / "a", steps=2, save_trajectories=False, plot=False, **extra)
    res_a = train(straight, model=answer_policy(tok), tokenizer=tok)
    first = _config(tmp_path / "b", steps=1, save_trajectories=False, plot=False, **extra)
    train(first, model=answer_policy(tok), tokenizer=tok)
    resumed_model = answer_policy(tok)  # a fresh model: the checkpoint must restore everything
    resumed = _config(tmp_path / "b", steps=2, resume=True, save_trajectories=False, plot=False, **extra)
    res_b = train(resumed, model=resumed_model, tokenizer=tok)
    assert [r["step"] for r in res_b.metrics] == [0, 1]
    a, b = res_a.metrics[1], res_b.metrics[1]
    for key in ("reward/mean", "loss/policy", "loss/entropy", "loss/kl", "adv/std", "tokens/generated"):
        assert a[key] == pytest.approx(b[key], abs=1e-6), key
    ckpt = torch.load(tmp_path / "a" / "run" / "checkpoints" / "step-000002" / "checkpoint.pt", weights_only=False)
    for n, p in resumed_model.named_parameters():
        assert torch.allclose(p, ckpt["model"][n], atol=1e-6), n


@pytest.mark.parametrize("advantage", list(Advantage))
def test_every_estimator_on_real_rollouts(tmp_path, tok, advantage):
    config = _config(tmp_path, advantage=advantage)
    trajs, seqs, token_adv = _fixed_batch(config, answer_policy(tok), tok)
    tables = reward_tables(trajs, config)
    counts = np.zeros_like(tables.mask, dtype=float)
    for i, s in enumerate(seqs):
        for t, (a, b) in enumerate(s.turn_spans):
            counts[i, t] = b - a
    for g in range(2):
        adv = group_advantages(tables, slice(g * 4, g * 4 + 4), config, trajs, counts)
        assert adv.shape == tables.mask[g * 4 : g * 4 + 4].shape and np.all(np.isfinite(adv))
        assert np.all(adv[~tables.mask[g * 4 : g * 4 + 4]] == 0.0)
        returns = tables.returns()[g * 4 : g * 4 + 4]
        if len(set(returns.round(9))) > 1:
            assert np.abs(adv).max() > 0, f"{advantage}: mixed rewards but all-zero advantages"


def test_info_gain_reward_with_igpo_and_lora(tmp_path, tok):
    config = _config(tmp_path, reward="info_gain", advantage="igpo", lora=True, lora_r=4, kl_coef=0.1,
                     env_kwargs={"low": 1, "high": 4, "max_turns": 2}, max_new_tokens=4)
    res = train(config, model=tiny_llama(tok), tokenizer=tok)
    row = res.metrics[0]
    assert "reward/info_gain_mean" in row and np.isfinite(row["reward/info_gain_mean"])
    assert np.isfinite(row["loss/kl"])


def test_gated_reward_scheme_logs_the_ungated_sum(tmp_path, tok):
    config = _config(tmp_path, reward="gated", gate_priority=["outcome"], gate_thresholds=[1.0])
    res = train(config, model=answer_policy(tok), tokenizer=tok)
    row = res.metrics[0]
    # the gate only removes GuessNumber's lower-priority terms (penalties here) from lost episodes
    assert row["reward/mean"] >= row["reward/ungated_mean"] - 1e-9


def test_train_main_cli_with_a_local_model_folder(tmp_path, tok, capsys):
    folder = tmp_path / "tiny"
    answer_policy(tok).save_pretrained(folder)
    tok.save_pretrained(folder)
    rc = train_main(["rlvr/GuessNumber-v0", "--model", str(folder), "--advantage", "dual", "--group-size", "2",
                     "--tasks-per-step", "1", "--steps", "1", "--max-new-tokens", "7", "--env-kwargs",
                     json.dumps(ENV_KW), "--output-dir", str(tmp_path / "cli"), "--no-plot"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "advantage=dual" in out.out and (tmp_path / "cli" / "metrics.jsonl").is_file()


def test_train_main_reports_config_errors(capsys):
    with pytest.raises(SystemExit):
        train_main(["rlvr/GuessNumber-v0", "--advantage", "grpp"])  # argparse rejects the choice
    assert "invalid choice" in capsys.readouterr().err
    assert train_main(["rlvr/GuessNumber-v0", "--group-size", "1"]) == 2
    assert "group_size must be >= 2" in capsys.readouterr().err


def test_vllm_backend_without_vllm_says_how_to_fix():
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401
    except ImportError:
        pass
    else:  # pragma: no cover - only on machines with vLLM
        pytest.skip("vLLM is installed here")
    from rlvr.agents.trainer.backends import VLLMBackend
    from rlvr.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="vllm"):
        VLLMBackend("smollm2", max_new_tokens=8, temperature=1.0, top_p=1.0, gpu_memory_utilization=0.3,
                    max_context=512, seed=0)


def test_demo_summary_table_and_run(tmp_path, tok, capsys):
    from rlvr.agents.trainer.demo import demo_config, demo_main, summary_table

    from rlvr.agents.trainer.config import TrainConfig as TC
    from rlvr.bench.learning import plan_learning

    cfg = demo_config(str(tmp_path / "d"))
    assert cfg.env == "rlvr/GuessNumber-v0" and cfg.eval_episodes > 0 and cfg.device == "cpu"
    assert cfg.warmup_sft_steps > 0 and cfg.eval_base and cfg.output_dir == str(tmp_path / "d")
    assert cfg.gradient_checkpointing  # the demo's memory budget (2.5 GB), whatever the benchmark runs use
    # the demo is the learning benchmark's seed-0 GuessNumber run of its scheme, evaluated the same way
    from rlvr.agents.trainer.demo import DEMO_SCHEME

    bench = TC.from_args(list(plan_learning(tmp_path, [DEMO_SCHEME], [0], envs=["rlvr/GuessNumber-v0"])[0].args))
    assert cfg.steps == 2 and bench.steps == 8  # the demo runs the benchmark run's first 2 steps
    same = ("env_kwargs", "seed", "lr", "advantage", "reward", "reward_weights", "warmup_sft_steps",
            "warmup_sft_episodes", "warmup_sft_lr", "group_size", "tasks_per_step", "max_new_tokens", "eval_episodes",
            "temperature")
    assert {k: getattr(cfg, k) for k in same} == {k: getattr(bench, k) for k in same}
    table = summary_table([("base", {"episodes": 4, "mean_reward": 0.25, "components": {"outcome": 0.25}}),
                           ("after", {"episodes": 4, "mean_reward": 0.5, "components": {"outcome": 0.5}})])
    assert "| metric | base | after |" in table
    assert "| mean reward | 0.250 | 0.500 |" in table and "| reward: outcome | 0.250 | 0.500 |" in table
    folder = tmp_path / "tiny"
    answer_policy(tok).save_pretrained(folder)
    tok.save_pretrained(folder)
    assert demo_main(["--model", str(folder), "--steps", "1", "--warmup-steps", "2",
                      "--output-dir", str(tmp_path / "demo")]) == 0
    out = tmp_path / "demo"
    summary = (out / "summary.md").read_text()
    assert "| success rate |" in summary and "after warm-up" in summary
    for name in ("trajectories.jsonl", "metrics.jsonl", "plots/training.png", "eval_before/trajectories.jsonl",
                 "eval_warmup/trajectories.jsonl", "eval_after/trajectories.jsonl", "summary.json",
                 "checkpoints/warmup/checkpoint.pt"):
        assert (out / name).is_file(), name
    data = json.loads((out / "summary.json").read_text())
    assert len(data["warmup_nll"]) == 2 and data["warmup_nll"][1] < data["warmup_nll"][0]
    assert "wall time" in capsys.readouterr().out


def test_warm_start_clones_the_oracle(tmp_path, tok):
    from rlvr.agents.trainer.sft import demonstration_sequences, sft_warmup

    seqs = demonstration_sequences("rlvr/GuessNumber-v0", {"low": 1, "high": 8}, tok, episodes=2, seed=0)
    assert all(s.num_policy_tokens > 0 and len(s.turn_spans) >= 2 for s in seqs)  # guesses, then the answer
    text = tok.decode([t for s in seqs[:1] for t, m in zip(s.input_ids, s.loss_mask) if m])
    assert '"name": "guess"' in text and "<answer>" in text
    model = tiny_llama(tok)
    losses = sft_warmup(model, seqs, steps=4, lr=1e-3, pad_id=tok.pad_token_id, device=torch.device("cpu"))
    assert len(losses) == 4 and losses[-1] < losses[0]


def test_a_run_reuses_another_runs_warm_start(tmp_path, tok, monkeypatch):
    """warm_start_from loads the other run's warm-start weights and evaluation instead of training them again;
    other warm-start settings are a clear error, other reward weights re-evaluate."""
    import rlvr.agents.trainer.trainer as T

    fresh = tiny_llama
    kw = dict(warmup_sft_steps=2, warmup_sft_episodes=2, warmup_sft_lr=1e-3, eval_episodes=2, eval_base=False,
              lr=1e-6)
    first = _config(tmp_path, output_dir=str(tmp_path / "a"), **kw)
    res_a = train(first, model=fresh(tok), tokenizer=tok)
    warm = torch.load(tmp_path / "a" / "checkpoints" / "warmup" / "checkpoint.pt", weights_only=False)["model"]
    second = _config(tmp_path, output_dir=str(tmp_path / "b"), warm_start_from=str(tmp_path / "a"), advantage="turn",
                     save_final=False, **kw)
    model_b = fresh(tok)
    calls = []
    real_sft = T.sft_warmup
    monkeypatch.setattr(T, "sft_warmup", lambda *a, **k: calls.append(1) or real_sft(*a, **k))
    res_b = train(second, model=model_b, tokenizer=tok)
    assert calls == []  # no behaviour cloning: the weights came from run a
    assert res_b.eval_warmup == res_a.eval_warmup and res_b.warmup_losses == res_a.warmup_losses
    b = tmp_path / "b"
    assert (b / "eval_warmup" / "trajectories.jsonl").read_text() == (tmp_path / "a" / "eval_warmup" / "trajectories.jsonl").read_text()
    # save_final=False: the warm start is all the run keeps (run a, saving, also has its final checkpoint)
    assert sorted(p.name for p in (b / "checkpoints").iterdir()) == ["warmup"]
    assert (tmp_path / "a" / "checkpoints" / "latest").is_file()
    mine = torch.load(b / "checkpoints" / "warmup" / "checkpoint.pt", weights_only=False)["model"]
    assert mine.keys() == warm.keys() and all(torch.equal(mine[n], warm[n]) for n in warm)
    # the loaded weights are the ones RL started from: one AdamW step at lr 1e-6 moves each by about 1e-6
    # (the warm start's two steps at lr 1e-3 moved them about 1e-3 from a fresh model's)
    params = {n: p.detach() for n, p in model_b.named_parameters()}
    assert max(float((params[n] - warm[n]).abs().max()) for n in warm) < 1e-5
    other = _config(tmp_path, output_dir=str(tmp_path / "c"), warm_start_from=str(tmp_path / "a"),
                    **{**kw, "warmup_sft_steps": 3})
    with pytest.raises(ConfigError, match="warmup_sft_steps: 2 there, 3 here"):
        train(other, model=fresh(tok), tokenizer=tok)
    with pytest.raises(ConfigError, match="holds no warm start"):
        train(_config(tmp_path, output_dir=str(tmp_path / "d"), warm_start_from=str(tmp_path / "nowhere"), **kw),
              model=fresh(tok), tokenizer=tok)
    other_seed = _config(tmp_path, output_dir=str(tmp_path / "f"), warm_start_from=str(tmp_path / "a"), seed=3, **kw)
    train(other_seed, model=fresh(tok), tokenizer=tok)  # another seed loads the weights, evaluates its own tasks
    seeds = {json.loads(line)["seed"] for line in (tmp_path / "f" / "eval_warmup" / "trajectories.jsonl").read_text().splitlines()}
    assert seeds and seeds.isdisjoint(json.loads(line)["seed"] for line in
                                      (tmp_path / "a" / "eval_warmup" / "trajectories.jsonl").read_text().splitlines())
    assert torch.equal(torch.load(tmp_path / "f" / "checkpoints" / "warmup" / "checkpoint.pt", weights_only=False)["model"][
        next(iter(warm))], warm[next(iter(warm))])
    weighted = _config(tmp_path, output_dir=str(tmp_path / "e"), warm_start_from=str(tmp_path / "a"),
                       reward_weights={"progress": 0.0}, **kw)
    res_e = train(weighted, model=fresh(tok), tokenizer=tok)  # the evaluation records rewards: evaluated afresh
    assert res_e.eval_warmup is not None and res_e.eval_warmup["success_rate"] == res_a.eval_warmup["success_rate"]


@pytest.mark.slow
def test_smollm2_train_step(tmp_path):
    """SmolLM2-135M itself: one rollout + update step on GuessNumber changes its weights."""
    from rlvr.agents.models import load_model

    model, tokenizer = load_model("smollm2", device="cpu", dtype=torch.float32)
    before = model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    config = _config(tmp_path, env_kwargs={"low": 1, "high": 4, "max_turns": 2}, group_size=2, tasks_per_step=1,
                     max_new_tokens=24, lr=1e-5, model="smollm2")
    res = train(config, model=model, tokenizer=tokenizer)
    row = res.metrics[0]
    assert row["tokens/prompt_mismatch_turns"] == 0 and row["tokens/generated"] > 0
    assert abs(row["loss/ratio_mean"] - 1.0) < 0.05
    if row["adv/zero_group_frac"] < 1.0:
        assert not torch.equal(before, model.model.layers[0].self_attn.q_proj.weight)


def test_policy_weights_merges_lora_under_base_names(tok):
    import copy

    from peft import LoraConfig, get_peft_model

    from rlvr.agents.trainer.backends import policy_weights

    base = tiny_llama(tok)
    names = {n for n, _ in base.named_parameters()}
    peft_model = get_peft_model(copy.deepcopy(base), LoraConfig(r=2, target_modules="all-linear"))
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_()
    got = dict(policy_weights(peft_model))
    assert set(got) == names
    merged = dict(copy.deepcopy(peft_model).merge_and_unload().named_parameters())
    for n in names:
        assert torch.allclose(got[n], merged[n], atol=1e-6), n
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(got[q], dict(base.named_parameters())[q])  # the adapter is in the weights
    assert all(not n.startswith("base_model") for n in dict(policy_weights(base)))

"""The VLM policy path on tiny random models: codecs, token-exact multi-turn rollouts with images,
multimodal training sequences (image tokens and environment text out of the loss), one PPO step."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from rlvr.agents.rollout import rollout
from rlvr.agents.trainer.config import TrainConfig
from rlvr.agents.trainer.multimodal import build_multimodal_sequence, image_token_mask, multimodal_inputs
from rlvr.agents.trainer.sequences import collate
from rlvr.agents.trainer.trainer import ppo_update, train
from rlvr.agents.vlm import MultimodalRenderer, VLMAgent
from rlvr.envs.grounding import GroundingTask
from rlvr.errors import ConfigError

from _tiny_vlm import VIEW_PIXELS, tiny_idefics3, tiny_qwen25_vl


def _tasks(n=2):
    out = []
    for i in range(n):
        img = Image.new("RGB", (300, 200), (90, 90, 90))
        img.paste((255, 0, 0) if i % 2 == 0 else (0, 0, 255), (200, 120, 212, 130))
        out.append(GroundingTask(f"t{i}", img, "Colour?", ("red", "blue"), i % 2, (200, 120, 212, 130)))
    return out


ENV_KW = {"max_pixels": VIEW_PIXELS, "min_pixels": 28 * 28, "mgpo": True}
"""MGPO's template: a first turn without a box gets the view again, so both turns' contexts hold images."""


@pytest.fixture(scope="module", params=["qwen2.5-vl", "idefics3"])
def vlm(request):
    return tiny_qwen25_vl() if request.param == "qwen2.5-vl" else tiny_idefics3()


def _rollout(model, codec, episodes=2, seed=0):
    agent = VLMAgent(model, codec, max_new_tokens=6, temperature=1.0, seed=seed, batch_size=4)
    return rollout("rlvr/Grounding-v0", agent, episodes=episodes, seed=seed, concurrency=episodes,
                   env_kwargs={"tasks": _tasks(), **ENV_KW})


def _forward_logprobs(model, seq):
    batch = collate([seq], seq.codec.pad_token_id)
    extra = multimodal_inputs([seq], batch["input_ids"])
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **extra).logits[0]
    logp = torch.log_softmax(logits.float(), -1)
    return [float(logp[i - 1, seq.input_ids[i]]) for i in range(1, len(seq)) if seq.loss_mask[i]]


def test_qwen_codec_expands_placeholders_and_marks_token_types():
    model, codec = tiny_qwen25_vl()
    img = Image.new("RGB", (112, 56))
    ids = codec.encode("a<|vision_start|><|image_pad|><|vision_end|>b", [img])
    grid = codec.process([img])["image_grid_thw"][0]
    assert codec.count_images(ids) == int(grid.prod()) // 4 == 8
    extra = codec.model_inputs([[img]], torch.tensor([ids]))
    assert int(extra["mm_token_type_ids"].sum()) == 8 and extra["pixel_values"].shape[0] == int(grid.prod())
    with pytest.raises(ConfigError, match="1 <\\|image_pad\\|> placeholder\\(s\\) for 2 image"):
        codec.encode("<|image_pad|>", [img, img])


def test_multi_turn_rollout_is_token_exact_and_masks_images(vlm):
    model, codec = vlm
    trajs = _rollout(model, codec)
    renderer = MultimodalRenderer(codec)
    for traj in trajs:
        assert len(traj.turns) == 2  # a random model never answers: two turns, then the budget
        t0, t1 = traj.turns
        assert t1.prompt_ids == [*t0.prompt_ids, *t0.completion_ids,
                                 *renderer.continuation_ids(t0.completion_ids, t0.observation)]
        assert codec.count_images(t0.prompt_ids) > 0 and codec.count_images(t1.prompt_ids) > codec.count_images(t0.prompt_ids)
        seq = build_multimodal_sequence(traj, renderer)
        assert seq.prompt_mismatches == [] and len(seq.images) == 2  # the view, then the view again or a crop
        img_mask = image_token_mask(seq)
        assert sum(img_mask) == seq.num_image_tokens > 0
        assert all(not (m and i) for m, i in zip(seq.loss_mask, img_mask))  # image tokens carry no loss
        assert sum(seq.loss_mask) == len(t0.completion_ids) + len(t1.completion_ids)  # env text carries none
        assert set(seq.attention_mask) == {1}
        # the rollout log-probs are the training forward's: same tokens, same images, same positions
        again = _forward_logprobs(model, seq)
        old = [x for x, m in zip(seq.old_logprobs, seq.loss_mask) if m]
        assert max(abs(a - b) for a, b in zip(again, old)) < 2e-3


def test_ppo_step_changes_the_weights(vlm):
    model, codec = vlm
    trajs = _rollout(model, codec)
    renderer = MultimodalRenderer(codec)
    seqs = [build_multimodal_sequence(t, renderer) for t in trajs]
    adv = [[1.0 if m else 0.0 for m in s.loss_mask] for s in seqs]
    adv[1] = [-a for a in adv[1]]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    cfg = TrainConfig(env="rlvr/Grounding-v0", group_size=2, micro_batch_size=2, temperature=1.0)
    stats = ppo_update(model, opt, seqs, adv, cfg, pad_id=codec.pad_token_id, device=torch.device("cpu"))
    changed = [n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())]
    assert math.isfinite(stats["loss/policy"]) and stats["loss/grad_norm"] > 0
    assert any("visual" in n or "vision" in n for n in changed) and any("lm_head" in n or "embed" in n for n in changed)


def test_train_loop_runs_a_vlm_step_from_a_checkpoint_folder(tmp_path):
    """``rlvr train --model PATH`` on a vision-language checkpoint: loaded with its codec, a behaviour-cloning
    warm start on oracle episodes (zoom to the gold box, answer), rolled out with images, one PPO step."""
    model, codec = tiny_qwen25_vl(seed=1)
    model.save_pretrained(tmp_path / "ckpt")
    codec.tokenizer.save_pretrained(tmp_path / "ckpt")
    codec.image_processor.save_pretrained(tmp_path / "ckpt")
    cfg = TrainConfig(env="rlvr/Grounding-v0", env_kwargs={"tasks": _tasks(), **ENV_KW}, model=str(tmp_path / "ckpt"),
                      group_size=2, tasks_per_step=1, steps=1, max_new_tokens=6, eval_episodes=0,
                      output_dir=str(tmp_path / "run"), plot=False, save_trajectories=True, micro_batch_size=2,
                      temperature=1.0, warmup_sft_steps=2, warmup_sft_episodes=2, warmup_sft_lr=1e-2)
    res = train(cfg)
    assert len(res.warmup_losses) == 2 and res.warmup_losses[1] < res.warmup_losses[0]
    row = res.metrics[-1]
    assert row["episodes/trained"] == 2 and math.isfinite(row["loss/policy"])
    assert (tmp_path / "run" / "trajectories.jsonl").stat().st_size > 0


@pytest.mark.parametrize("build", [tiny_qwen25_vl, tiny_idefics3])
def test_hf_path_spec_loads_a_saved_vlm(build, tmp_path):
    """``--agent hf:PATH`` on a vision-language checkpoint builds a VLMAgent (Qwen without torchvision)."""
    from rlvr.agents.factory import make_agent

    model, codec = build()
    model.save_pretrained(tmp_path)
    (codec.processor if hasattr(codec, "processor") else codec.tokenizer).save_pretrained(tmp_path)
    if hasattr(codec, "image_processor"):
        codec.image_processor.save_pretrained(tmp_path)
    agent = make_agent(f"hf:{tmp_path}", max_new_tokens=3, temperature=0.0)
    assert isinstance(agent, VLMAgent) and type(agent.codec) is type(codec)
    msgs = [{"role": "user", "content": [{"type": "image", "image": Image.new("RGB", (56, 56))},
                                         {"type": "text", "text": "hi"}]}]
    gen = agent.act_batch([msgs])[0]
    assert gen.completion_ids == VLMAgent(model, codec, max_new_tokens=3, temperature=0.0).act_batch([msgs])[0].completion_ids

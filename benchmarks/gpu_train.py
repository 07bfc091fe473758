"""The GPU run: SmolLM2-135M trained with bf16 on GuessNumber and DeepSearch-v0 (1 hop), with its figures.

Reports, per environment: the reward curve (``reward/mean`` per step), rollout and update tokens/s
(median over the steps after the first), the update against a bare forward + backward + optimiser
step over the same oracle sequences (``benchmarks/bench_update.py``'s floor), rollouts against a
bare sampling ``model.generate`` at the same batch size and budget, and peak GPU memory. Prints a
table and writes ``benchmarks/results/gpu_train.json``.

The device machine has torch, transformers, peft and accelerate but not this package's other
dependencies nor the embedded model, and at most 64 MiB travel per call. So the run goes in three
commands:

1. here: ``python benchmarks/gpu_train.py pack`` writes ``benchmarks/.gpu_carry/part-NN`` (at most
   60 MiB each): the embedded model converted to a bf16 safetensors folder, plus the pure-Python
   dependencies, as one tar stream cut in parts, and ``manifest.json`` with their sha256;
2. on the device, once per part: ``python benchmarks/gpu_train.py receive`` with that part carried
   (``carry=["benchmarks/.gpu_carry/part-NN"]``): it is checked and copied to ``--store``
   (default ``/tmp/rlvr_gpu``, outside the work tree, kept while the machine stays warm);
3. on the device: ``python benchmarks/gpu_train.py run``: joins and unpacks the parts, puts the
   dependencies on ``sys.path`` and trains.

``run --dry-run`` (automatic without CUDA) makes the same run on CPU in a couple of tiny steps per
environment with the locally installed model (``--model``), so the script is tried before any
device time is spent.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import shutil
import statistics
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CARRY = HERE / ".gpu_carry"
PART_BYTES = 60 * 2**20
# what the device lacks: the package's own dependencies (pure Python, or wheels for its Python)
DEPS = ("gymnasium", "farama_notifications", "cloudpickle", "jsonschema", "jsonschema_specifications", "referencing",
        "rpds", "attrs", "httpx", "httpcore", "h11", "anyio", "sniffio", "certifi", "idna", "tqdm", "bm25s",
        "Stemmer", "yaml")
ENVS = {
    "guess_number": dict(env="rlvr/GuessNumber-v0", env_kwargs={"low": 1, "high": 16}, max_new_tokens=48),
    "deepsearch_1hop": dict(env="rlvr/DeepSearch-v0", env_kwargs={"hops": 1}, max_new_tokens=96),
}


# --- carrying ----------------------------------------------------------------------------------------

def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split_stream(data: bytes, out: Path, part_bytes: int = PART_BYTES) -> dict[str, Any]:
    """Cut ``data`` into ``out/part-NN`` files of at most ``part_bytes``; write and return the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    parts = []
    for k, start in enumerate(range(0, len(data), part_bytes)):
        chunk = data[start:start + part_bytes]
        name = f"part-{k:02d}"
        (out / name).write_bytes(chunk)
        parts.append({"name": name, "bytes": len(chunk), "sha256": sha256(chunk)})
    manifest = {"total_bytes": len(data), "sha256": sha256(data), "parts": parts}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def receive(carry: Path, store: Path) -> list[str]:
    """Copy the checked parts found in ``carry`` (and the manifest) into ``store``; returns their names."""
    manifest = json.loads((carry / "manifest.json").read_text())
    store.mkdir(parents=True, exist_ok=True)
    shutil.copy(carry / "manifest.json", store / "manifest.json")
    got = []
    for part in manifest["parts"]:
        src = carry / part["name"]
        if not src.is_file():
            continue
        data = src.read_bytes()
        if sha256(data) != part["sha256"]:
            raise SystemExit(f"{src}: sha256 mismatch (the part was cut short in transit); carry it again")
        (store / part["name"]).write_bytes(data)
        got.append(part["name"])
    return got


def join_parts(store: Path) -> bytes:
    """The whole stream from the parts in ``store``, checked against the manifest (missing parts named)."""
    manifest = json.loads((store / "manifest.json").read_text())
    missing = [p["name"] for p in manifest["parts"] if not (store / p["name"]).is_file()]
    if missing:
        raise SystemExit(f"parts not received yet: {missing}; run `receive` with each carried")
    data = b"".join((store / p["name"]).read_bytes() for p in manifest["parts"])
    if sha256(data) != manifest["sha256"]:
        raise SystemExit("the joined parts do not match the manifest's sha256; receive them again")
    return data


def pack(out: Path) -> dict[str, Any]:
    """Tar the embedded model (bf16 safetensors folder) and the dependencies, cut in parts under ``out``."""
    import importlib.util

    import torch

    from rlvr.agents.models import load_model

    model, tok = load_model("smollm2", device="cpu", dtype=torch.bfloat16)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        staging = out / "staging"
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(staging / "model")
        tok.save_pretrained(staging / "model")
        tar.add(staging / "model", arcname="model")
        shutil.rmtree(staging)
        for name in DEPS:
            spec = importlib.util.find_spec(name)
            if spec is None or spec.origin is None:
                print(f"  (not installed here, not packed: {name})")
                continue
            origin = Path(spec.origin)
            src = origin.parent if origin.name == "__init__.py" else origin
            tar.add(src, arcname=f"site/{src.name}", filter=lambda t: None if "__pycache__" in t.name else t)
    shutil.rmtree(out, ignore_errors=True)
    return split_stream(buf.getvalue(), out)


def unpack(store: Path) -> tuple[Path, Path]:
    """Join the parts into ``store/unpacked`` once; returns the model folder and the dependencies folder."""
    root = store / "unpacked"
    if not (root / "model" / "config.json").is_file():
        with tarfile.open(fileobj=io.BytesIO(join_parts(store))) as tar:
            # our own archive; rlvr (and its safe extraction) is importable only once it is unpacked
            tar.extractall(root, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    return root / "model", root / "site"


# --- the run -----------------------------------------------------------------------------------------

def bare_generate_tok_s(model: Any, tok: Any, prompts: list[list[int]], max_new: int) -> float:
    """New tokens/s of one sampling ``model.generate`` over ``prompts`` (left-padded), the rollout's floor."""
    import torch

    device = next(model.parameters()).device
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):], mask[i, width - len(p):] = torch.tensor(p), 1
    t0 = time.perf_counter()
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=True,
                             max_new_tokens=max_new, min_new_tokens=max_new, pad_token_id=tok.pad_token_id)
    return (out.shape[1] - width) * len(prompts) / (time.perf_counter() - t0)


def update_ratio(model: Any, tok: Any, env: str, env_kwargs: dict[str, Any], device: Any, n_seqs: int = 8,
                 repeats: int = 2) -> dict[str, float]:
    """rlvr's update against the bare forward + backward on the same ``n_seqs`` oracle sequences (best of
    ``repeats`` alternating runs each)."""
    sys.path.insert(0, str(HERE))
    from bench_update import bare_update, fill_rollout_logprobs

    import torch

    from rlvr.agents.trainer.config import TrainConfig
    from rlvr.agents.trainer.sft import demonstration_sequences
    from rlvr.agents.trainer.update import ppo_update

    seqs = demonstration_sequences(env, env_kwargs, tok, n_seqs, 0)
    fill_rollout_logprobs(model, seqs, tok.pad_token_id)
    adv = [[(1.0 if k % 2 else -1.0) * m for m in s.loss_mask] for k, s in enumerate(seqs)]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-7)
    cfg = TrainConfig(env=env, env_kwargs=env_kwargs, micro_batch_size=4, lr=1e-7)
    ac = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if device.type == "cuda" else None
    times: dict[str, list[float]] = {"bare": [], "rlvr": []}
    for _ in range(repeats):
        for name in times:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            if name == "bare":
                with ac() if ac else contextlib.nullcontext():
                    bare_update(model, opt, seqs, 4, tok.pad_token_id)
            else:
                ppo_update(model, opt, seqs, adv, cfg, pad_id=tok.pad_token_id, device=device,
                           **({"autocast": ac} if ac else {}))
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t0)
    n = sum(len(s) for s in seqs)
    bare, rlvr = n / min(times["bare"]), n / min(times["rlvr"])
    return {"bare_update_tok_s": bare, "rlvr_update_tok_s": rlvr, "update_ratio": rlvr / bare}


def run_env(name: str, model_path: str, args: argparse.Namespace, device: str, out_dir: Path) -> dict[str, Any]:
    import torch

    from rlvr.agents.models import load_model
    from rlvr.agents.trainer.config import TrainConfig
    from rlvr.agents.trainer.trainer import train

    spec = dict(ENVS[name])
    dry = args.dry_run
    if dry:
        spec["max_new_tokens"] = 8
    cfg = TrainConfig(**spec, model=model_path, steps=args.steps, tasks_per_step=1 if dry else 2,
                      group_size=2 if dry else 4, device=device, precision="fp32" if device == "cpu" else "bf16",
                      lr=1e-6, temperature=1.0, advantage="grpo", micro_batch_size=4, plot=False,
                      save_trajectories=False, output_dir=str(out_dir / name), eval_episodes=0,
                      max_context=2048)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    res = train(cfg, log=lambda m: print(f"  [{name}] {m}", flush=True))
    wall = time.perf_counter() - t0
    rows = res.metrics
    later = rows[1:] or rows
    model, tok = load_model(model_path, device=device, dtype=torch.float32)
    from rlvr.agents.hf import chat_prompt_ids

    import gymnasium as gym

    env = gym.make(spec["env"], **spec["env_kwargs"])
    prompts = [chat_prompt_ids(tok, env.reset(seed=s)[0]) for s in range(cfg.tasks_per_step * cfg.group_size)]
    env.close()
    gen_tok_s = bare_generate_tok_s(model, tok, prompts, cfg.max_new_tokens)
    ratio = update_ratio(model, tok, spec["env"], spec["env_kwargs"], torch.device(device), n_seqs=2 if dry else 8,
                         repeats=1 if dry else 2)
    rollout_tok_s = statistics.median(r.get("perf/rollout_tok_s", 0.0) for r in later)
    return {
        "env": spec["env"], "env_kwargs": spec["env_kwargs"], "steps": len(rows), "wall_s": wall,
        "reward_curve": [r.get("reward/mean") for r in rows],
        "success_curve": [r.get("success_rate") for r in rows],
        "rollout_tok_s": rollout_tok_s,
        "update_tok_s": statistics.median(r.get("perf/update_tok_s", 0.0) for r in later),
        "bare_generate_tok_s": gen_tok_s, "rollout_ratio": rollout_tok_s / gen_tok_s if gen_tok_s else None,
        **ratio,
        "peak_gpu_mb": (torch.cuda.max_memory_allocated() / 2**20) if device == "cuda" else None,
        "peak_step_mem_mb": max(r.get("perf/peak_mem_mb", 0.0) for r in rows),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    store = Path(args.store)
    cuda = torch.cuda.is_available()
    args.dry_run = args.dry_run or not cuda
    if args.dry_run:
        model_path = args.model
        args.steps = min(args.steps, 2)
        print(f"dry run on CPU ({'no CUDA device' if not cuda else '--dry-run'}): {args.steps} tiny steps per "
              "environment; the figures say nothing about a GPU", flush=True)
    else:
        model_dir, site = unpack(store)
        sys.path.insert(0, str(site))
        model_path = str(model_dir)
    sys.path.insert(0, str(HERE.parent))
    import rlvr  # noqa: F401  (after the carried dependencies are importable)

    device = "cpu" if args.dry_run else "cuda"
    out_dir = Path(args.run_dir)
    record: dict[str, Any] = {"dry_run": args.dry_run, "device": device, "model": model_path, "envs": {}}
    if device == "cuda":
        record["gpu"] = torch.cuda.get_device_name()
    failed = {}
    for name in args.envs:
        try:  # one environment failing (e.g. a dependency missing on the device) leaves the other's figures
            record["envs"][name] = run_env(name, model_path, args, device, out_dir)
        except Exception as e:  # reported in the table and the JSON, and the exit status
            failed[name] = f"{type(e).__name__}: {e}"
            print(f"  [{name}] failed: {failed[name]}", flush=True)
    record["failed"] = failed
    print("\n| env | steps | reward first -> last | rollout tok/s | x generate | update tok/s | x bare | peak GPU MB |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for name, r in record["envs"].items():
        curve = [c for c in r["reward_curve"] if c is not None]
        first_last = f"{curve[0]:+.3f} -> {curve[-1]:+.3f}" if curve else "-"
        peak = f"{r['peak_gpu_mb']:.0f}" if r["peak_gpu_mb"] is not None else "-"
        print(f"| {name} | {r['steps']} | {first_last} | {r['rollout_tok_s']:.0f} | {r['rollout_ratio']:.2f} | "
              f"{r['update_tok_s']:.0f} | {r['update_ratio']:.2f} | {peak} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {out}")
    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="here: cut the model and dependencies into parts under --dir")
    p.add_argument("--dir", default=str(CARRY))
    r = sub.add_parser("receive", help="device: keep the carried parts in --store")
    r.add_argument("--dir", default=str(CARRY))
    r.add_argument("--store", default="/tmp/rlvr_gpu")
    t = sub.add_parser("run", help="device: train and report (--dry-run, or no CUDA: tiny CPU steps)")
    t.add_argument("--store", default="/tmp/rlvr_gpu")
    t.add_argument("--steps", type=int, default=30)
    t.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    t.add_argument("--dry-run", action="store_true")
    t.add_argument("--model", default="smollm2", help="dry run: the model to use (default the embedded one)")
    t.add_argument("--run-dir", default="runs/gpu_train")
    t.add_argument("--out", default=str(HERE / "results" / "gpu_train.json"))
    args = ap.parse_args(argv)
    if args.cmd == "pack":
        manifest = pack(Path(args.dir))
        names = [p["name"] for p in manifest["parts"]]
        print(f"{manifest['total_bytes'] / 2**20:.0f} MiB in {len(names)} parts under {args.dir}; on the device run "
              f"`python benchmarks/gpu_train.py receive` once per part (carry that part and manifest.json), "
              f"then `python benchmarks/gpu_train.py run`")
    elif args.cmd == "receive":
        got = receive(Path(args.dir), Path(args.store))
        print(f"received {got} into {args.store}")
    else:
        return 1 if run(args)["failed"] else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""benchmarks/gpu_train.py: its parts survive the trip (split, receive, join, checked), and its dry run
trains on CPU and reports every figure."""

import importlib.util
import json
from pathlib import Path

import pytest

from _trainer_helpers import answer_policy, smollm2_tokenizer

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_train.py"


@pytest.fixture(scope="module")
def gpu_train():
    spec = importlib.util.spec_from_file_location("gpu_train", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_parts_are_cut_checked_and_joined(gpu_train, tmp_path):
    data = bytes(range(256)) * 41  # 10,496 bytes
    manifest = gpu_train.split_stream(data, tmp_path / "carry", part_bytes=4000)
    assert [p["bytes"] for p in manifest["parts"]] == [4000, 4000, 2496]
    store = tmp_path / "store"
    carried = tmp_path / "call"  # one device call carries one part and the manifest
    for part in manifest["parts"]:
        carried.mkdir(exist_ok=True)
        for f in carried.iterdir():
            f.unlink()
        (carried / part["name"]).write_bytes((tmp_path / "carry" / part["name"]).read_bytes())
        (carried / "manifest.json").write_text((tmp_path / "carry" / "manifest.json").read_text())
        if part["name"] == "part-01":
            with pytest.raises(SystemExit, match=r"not received yet: \['part-01', 'part-02'\]"):
                gpu_train.join_parts(store)
        assert gpu_train.receive(carried, store) == [part["name"]]
    assert gpu_train.join_parts(store) == data
    (carried / "part-02").write_bytes(b"x" * 2496)
    with pytest.raises(SystemExit, match="sha256 mismatch"):
        gpu_train.receive(carried, store)


@pytest.mark.slow
def test_dry_run_trains_both_environments_on_cpu(gpu_train, tmp_path):
    tok = smollm2_tokenizer()
    folder = tmp_path / "tiny"
    answer_policy(tok).save_pretrained(folder)
    tok.save_pretrained(folder)
    out = tmp_path / "gpu.json"
    assert gpu_train.main(["run", "--dry-run", "--model", str(folder), "--steps", "1", "--run-dir",
                           str(tmp_path / "runs"), "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["dry_run"] and record["device"] == "cpu" and set(record["envs"]) == {"guess_number",
                                                                                       "deepsearch_1hop"}
    for r in record["envs"].values():
        assert r["steps"] == 1 and len(r["reward_curve"]) == 1
        for key in ("rollout_tok_s", "update_tok_s", "bare_generate_tok_s", "rollout_ratio", "bare_update_tok_s",
                    "update_ratio"):
            assert r[key] > 0, key

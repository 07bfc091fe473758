"""Outputs of ``rlvr bench rewards``: markdown tables, CSV, JSON, the papers' claims, PNG plots.

:func:`check_claims` turns the measured rows into the published claims, each ``checked`` or
``not reproduced`` (or ``not measured`` when its inputs were not run) with the numbers behind it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["check_claims", "credit_table", "exploit_table", "summary", "write_offline", "write_outputs"]

CREDIT_COLS = ("task", "scheme", "zero_adv_frac", "groups_per_step", "adv_energy", "sxf_pairs", "spearman", "argmax_decisive",
               "steps_to_target", "groups_to_target", "reached", "final_success", "farm_rate", "steps_to_farm", "seeds")
OFFLINE_COLS = ("env", "scheme", "J", "zero_adv_frac", "adv_energy", "filtered", "groups", "episodes")
LEARNING_COLS = ("env", "scheme", "held_out_warm", "held_out_after", "gain", "learned", "train_success_start",
                 "train_success", "zero_adv_frac", "seeds")
EXPLOIT_COLS = ("env", "scheme", "agent", "target", "J", "margin", "adv_gap", "success", "episodes")


def _fmt(v: Any, ci: Any = None) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        s = f"{v:.3f}" if abs(v) < 1000 else f"{v:.0f}"
        if ci:
            s += f" [{ci[0]:.2f}, {ci[1]:.2f}]"
        return s
    return str(v)


def _md(rows: Sequence[dict], cols: Sequence[str], with_ci: bool = False) -> str:
    head = "| " + " | ".join(cols) + " |\n| " + " | ".join("---" for _ in cols) + " |\n"
    body = "".join("| " + " | ".join(_fmt(r.get(c), r.get(c + "_ci") if with_ci else None) for c in cols) + " |\n"
                   for r in rows)
    return head + body


def credit_table(rows: Sequence[dict]) -> str:
    """Markdown table of the microbenchmark (means with 95% intervals over seeds)."""
    return _md(rows, CREDIT_COLS, with_ci=True)


def exploit_table(rows: Sequence[dict]) -> str:
    """Markdown table of the exploit benchmark (one row per environment, scheme and agent)."""
    return _md(rows, EXPLOIT_COLS)


def _claim(name: str, source: str, ok: bool | None, numbers: str) -> dict[str, Any]:
    status = "not measured" if ok is None else ("checked" if ok else "not reproduced")
    return {"claim": name, "source": source, "status": status, "numbers": numbers}


def _find(rows, **kw):
    return [r for r in rows if all(r.get(k) == v for k, v in kw.items())]


def check_claims(credit: dict | None, exploits: dict | None, learning: dict | None = None) -> list[dict]:
    """The published claims against the measured rows."""
    out = []
    hungarian_vs_greedy = (exploits or {}).get("matching")
    crow = (credit or {}).get("rows", [])
    zag = {}
    for task in sorted({r["task"] for r in crow}):
        g, i = _find(crow, task=task, scheme="grpo"), _find(crow, task=task, scheme="igpo")
        if g and i:
            zag[task] = (g[0]["zero_adv_frac"], i[0]["zero_adv_frac"])
    ok = None if not zag else all(b < a for a, b in zag.values())
    out.append(_claim("information gain lowers the zero-advantage group fraction against outcome-only GRPO",
                      "IGPO (arXiv 2510.14967)", ok,
                      "; ".join(f"{t}: GRPO {a:.3f} vs IGPO {b:.3f}" for t, (a, b) in zag.items())
                      or "IGPO or GRPO not run"))
    if learning:
        lrow = learning.get("rows", [])
        pairs = {}
        for env in sorted({r["env"] for r in lrow}):
            # the outcome-only baseline: `outcome` (GRPO on the outcome alone), else `grpo`
            g = _find(lrow, env=env, scheme="outcome") or _find(lrow, env=env, scheme="grpo")
            i = _find(lrow, env=env, scheme="igpo")
            if g and i and g[0]["zero_adv_frac"] is not None and i[0]["zero_adv_frac"] is not None:
                pairs[env] = (g[0]["scheme"], g[0]["zero_adv_frac"], i[0]["zero_adv_frac"])
        out.append(_claim("with a language model, information gain lowers the zero-advantage fraction",
                          "IGPO (arXiv 2510.14967)", all(b < a for _, a, b in pairs.values()) if pairs else None,
                          "; ".join(f"{e}: {n} {a:.3f} vs IGPO {b:.3f}" for e, (n, a, b) in pairs.items())
                          or "outcome-only and IGPO learning runs not both present"))
    erow = (exploits or {}).get("rows", [])
    farm = {s: _find(erow, env="rlvr/SWE-v0", agent="farm_no_submit", scheme=s) for s in ("dra", "gra")}
    if farm["dra"] and farm["gra"]:
        d, g = farm["dra"][0]["margin"], farm["gra"][0]["margin"]
        ok = d is not None and g is not None and g < 0 <= d
        nums = f"step-reward farmer on SWE: margin {d:+.3f} under D-RA, {g:+.3f} under G-RA"
    else:
        ok, nums = None, "SWE not run (no Docker engine, or not selected)"
    out.append(_claim("gating removes the gain of the step-reward farmer (it gains under D-RA, loses under G-RA)",
                      "G-RA (arXiv 2508.10548)", ok, nums))
    broken = {s: (_find(erow, env="rlvr/SWE-v0", agent="break_package", scheme=s),
                  _find(erow, env="rlvr/SWE-v0", agent="empty_patch", scheme=s)) for s in ("gra", "dra", "grpo")}
    have = {s: (b[0]["J"], e[0]["J"]) for s, (b, e) in broken.items() if b and e}
    out.append(_claim("a patch that breaks the package earns no more than an empty patch",
                      "this benchmark (SWE outcome levels)", all(b <= e for b, e in have.values()) if have else None,
                      "; ".join(f"{s}: broken {b:+.3f} vs empty {e:+.3f}" for s, (b, e) in have.items())
                      or "SWE not run"))
    parts, oks = [], []
    for agent in ("shortcut", "cite_unopened", "stuff_citations"):
        c = _find(erow, env="rlvr/DeepSearch-v0", agent=agent, scheme="carr")
        g = _find(erow, env="rlvr/DeepSearch-v0", agent=agent, scheme="grpo")
        if c and g and c[0]["margin"] is not None and g[0]["margin"] is not None:
            oks.append(c[0]["margin"] < 0 and c[0]["margin"] < g[0]["margin"])
            parts.append(f"{agent}: margin {g[0]['margin']:+.3f} outcome-only, {c[0]['margin']:+.3f} CaRR")
    out.append(_claim("the rubric separates shortcut answers (no cited chain) from cited chains",
                      "CaRR (arXiv 2601.06021)", all(oks) if oks else None, "; ".join(parts) or "DeepSearch not run"))
    split = {s: _find(erow, env="rlvr/ToolCall-v0", agent="split_calls", scheme=s)
             for s in ("dra", "pure", "matchtir-hungarian")}
    if split["dra"] and split["pure"]:
        d, p = split["dra"][0]["margin"], split["pure"][0]["margin"]
        # the soft-min (temperature 0.1) is not exactly the minimum: a gain under 1% of the honest return is none
        ok = d is not None and p is not None and p < 0.01 < d
        nums = f"step splitter on ToolCall: margin {d:+.3f} under D-RA (sum), {p:+.5f} under PURE (min-form)"
        if split["matchtir-hungarian"]:
            nums += f", {split['matchtir-hungarian'][0]['margin']:+.3f} under MatchTIR (a turn's mean call credit)"
    else:
        ok, nums = None, "ToolCall not run"
    out.append(_claim("min-form credit does not pay for splitting a step into more steps (sum-form does)",
                      "PURE (arXiv 2504.15275)", ok, nums))
    echo = {s: _find(erow, env="rlvr/DeepSearch-v0", agent="echo_answer", scheme=s) for s in ("igpo-lm", "igpo")}
    if echo["igpo-lm"] and echo["igpo"]:
        lm_m, ev_m = echo["igpo-lm"][0]["margin"], echo["igpo"][0]["margin"]
        ok = lm_m is not None and ev_m is not None and ev_m <= 1e-9 < lm_m
        nums = (f"answer echoer on DeepSearch: margin {lm_m:+.3f} under IGPO's teacher-forced gain, "
                f"{ev_m:+.3f} under the gain of gold evidence surfaced")
    else:
        ok, nums = None, "DeepSearch or the igpo-lm scheme (a language model) not run"
    out.append(_claim("a teacher-forced answer probability pays for stating the answer early (IG inflation); "
                      "evidence-based information gain does not", "IGPO's reward (arXiv 2510.14967), this benchmark",
                      ok, nums))
    if hungarian_vs_greedy and hungarian_vs_greedy.get("trajectories"):
        h = hungarian_vs_greedy
        out.append(_claim("Hungarian matching credits at least as much as greedy on the same calls",
                          "MatchTIR (arXiv 2601.10712)", h["violations"] == 0,
                          f"{h['trajectories']} trajectories: Hungarian total {h['hungarian']:.3f} vs greedy "
                          f"{h['greedy']:.3f}; Hungarian higher on {h['strictly_more']}, lower on {h['violations']} "
                          f"(on {h['random_matrices']} random 3x3 similarity matrices Hungarian credits more on "
                          f"{h['random_strictly_more']})"))
    else:
        out.append(_claim("Hungarian matching credits at least as much as greedy on the same calls",
                          "MatchTIR (arXiv 2601.10712)", None, "ToolCall not run"))
    return out


def _csv(path: Path, rows: Sequence[dict], cols: Sequence[str]) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(cols), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c) for c in cols})


def _plots(out: Path, credit: dict | None, exploits: dict | None, learning: dict | None = None) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    if credit and credit.get("curves"):
        tasks = sorted({k.split("/")[0] for k in credit["curves"]})
        fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
        for ax, task in zip(axes[0], tasks):
            for key, c in credit["curves"].items():
                if key.startswith(task + "/") and not key.endswith("+dapo"):
                    ax.plot(c["zero_adv"], label=key.split("/", 1)[1], lw=1)
            ax.set(title=task, xlabel="step", ylabel="zero-advantage group fraction")
        axes[0][-1].legend(fontsize=6, ncol=2)
        fig.tight_layout()
        fig.savefig(out / "zero_adv_per_step.png", dpi=110)
        plt.close(fig)
        written.append("zero_adv_per_step.png")
        fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
        for ax, task in zip(axes[0], tasks):
            for key, (a, t) in credit["scatter"].items():
                if key.startswith(task + "/") and not key.endswith("+dapo"):
                    ax.scatter(t, a, s=4, label=key.split("/", 1)[1])
            ax.set(title=task, xlabel="true contribution Q - V", ylabel="advantage")
        axes[0][-1].legend(fontsize=6, ncol=2, markerscale=2)
        fig.tight_layout()
        fig.savefig(out / "advantage_vs_truth.png", dpi=110)
        plt.close(fig)
        written.append("advantage_vs_truth.png")
    rows = [r for r in (exploits or {}).get("rows", []) if r.get("margin") is not None and r["agent"] != "random"
            and not r["scheme"].endswith("+dapo")]
    if rows:
        envs = sorted({r["env"] for r in rows})
        fig, axes = plt.subplots(1, len(envs), figsize=(4.5 * len(envs), 4), squeeze=False)
        for ax, env in zip(axes[0], envs):
            mine = [r for r in rows if r["env"] == env]
            agents = sorted({r["agent"] for r in mine})
            schemes = list(dict.fromkeys(r["scheme"] for r in mine))
            grid = np.full((len(agents), len(schemes)), np.nan)
            for r in mine:
                grid[agents.index(r["agent"]), schemes.index(r["scheme"])] = max(-2.0, min(2.0, r["margin"]))
            im = ax.imshow(grid, cmap="RdYlGn_r", vmin=-2, vmax=2, aspect="auto")
            ax.set_xticks(range(len(schemes)), schemes, rotation=90, fontsize=6)
            ax.set_yticks(range(len(agents)), agents, fontsize=7)
            ax.set_title(env.split("/")[1], fontsize=8)
        fig.colorbar(im, ax=axes[0].tolist(), label="exploit margin (clipped to [-2, 2]); red: the exploit pays")
        fig.savefig(out / "exploit_margins.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append("exploit_margins.png")
    if learning and learning.get("curves"):
        panels = (("held_out", "held-out success (greedy)"), ("success", "training success"),
                  ("zero_adv", "zero-advantage group fraction"))
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
        for key, c in learning["curves"].items():
            color = None
            for ax, (metric, _) in zip(axes, panels):
                points = [(i, m, ci) for i, (m, ci) in enumerate(c.get(metric, [])) if m is not None]
                if not points:
                    continue
                xs = [p[0] for p in points]
                mean = np.array([p[1] for p in points], dtype=float)
                lo = np.array([p[2][0] if p[2] else p[1] for p in points], dtype=float)
                hi = np.array([p[2][1] if p[2] else p[1] for p in points], dtype=float)
                line = ax.plot(xs, mean, marker="o" if metric == "held_out" else None, ms=3, lw=1, color=color,
                               label=key.replace("rlvr/", ""))[0]
                color = line.get_color()
                ax.fill_between(xs, lo, hi, color=color, alpha=0.15)
        for ax, (_, label) in zip(axes, panels):
            ax.set(xlabel="RL step (0: after the warm start)", ylabel=label)
        axes[0].legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(out / "learning_curves.png", dpi=110)
        plt.close(fig)
        written.append("learning_curves.png")
    return written


def write_outputs(out: str | Path, credit: dict | None, exploits: dict | None, claims: list[dict],
                  meta: dict[str, Any], learning: dict | None = None) -> dict[str, Any]:
    """Write ``report.md``, ``credit.csv``, ``exploits.csv``, ``results.json`` and the plots into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md = ["# Reward-scheme benchmark\n"]
    if credit:
        md += ["## Credit assignment (synthetic tasks)\n", credit_table(credit["rows"])]
        _csv(out / "credit.csv", credit["rows"], CREDIT_COLS)
    if exploits:
        md += ["\n## Exploits (real environments)\n", exploit_table(exploits["rows"])]
        for env_id, why in exploits.get("skipped", {}).items():
            md.append(f"\nskipped {env_id}: {why}\n")
        _csv(out / "exploits.csv", exploits["rows"], EXPLOIT_COLS)
    if learning:
        md += ["\n## Learning with a language model\n", _md(learning["rows"], LEARNING_COLS, with_ci=True)]
        _csv(out / "learning.csv", learning["rows"], LEARNING_COLS)
    md += ["\n## Claims\n"] + [f"- **{c['status']}**: {c['claim']} ({c['source']}): {c['numbers']}\n" for c in claims]
    plots = _plots(out, credit, exploits, learning)
    if not plots:
        md.append("\n(no plots: matplotlib is not installed; `pip install rlvr-gym[train]`)\n")
    (out / "report.md").write_text("".join(md))
    results = {"meta": meta, "claims": claims, "credit": credit, "exploits": exploits, "learning": learning,
               "plots": plots}
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    return results


def write_offline(out: str | Path, rows: Sequence[dict], source: str) -> list[dict]:
    """Write the re-scoring of a trajectories file (``report.md``, ``offline.csv``, ``results.json``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(f"# Offline re-scoring of {Path(source).name}\n\n" + _md(rows, OFFLINE_COLS))
    _csv(out / "offline.csv", rows, OFFLINE_COLS)
    (out / "results.json").write_text(json.dumps({"source": str(source), "offline": list(rows)}, indent=1))
    return list(rows)


def summary(results: dict[str, Any]) -> str:
    """What the command prints: the credit table without DAPO variants, the exploit margins against each
    exploit's target and the published-scheme range, and the claims."""
    lines = []
    credit = results.get("credit")
    if credit:
        lines += ["Credit assignment (mean [95% CI] over seeds; +dapo variants in report.md):",
                  credit_table([r for r in credit["rows"] if not r["scheme"].endswith("+dapo")])]
    ex = results.get("exploits")
    if ex:
        lines.append("Exploit margins (J(exploit) - J(honest)) / |J(honest)|; a scheme resists when below 0:")
        keys = sorted({(r["env"], r["agent"], r["target"]) for r in ex["rows"] if r["agent"] != "honest"})
        tab = []
        for env, agent, target in keys:
            mine = [r for r in ex["rows"] if r["env"] == env and r["agent"] == agent and r.get("margin") is not None
                    and not r["scheme"].endswith("+dapo")]
            if not mine:
                continue
            worst = max(mine, key=lambda r: r["margin"])
            tgt = next((r for r in mine if r["scheme"] == target), None)
            tab.append({"env": env, "agent": agent, "target": target or "–",
                        "margin_at_target": None if tgt is None else tgt["margin"],
                        "worst_scheme": worst["scheme"], "worst_margin": worst["margin"],
                        "resisting": sum(r["margin"] < 0 for r in mine), "schemes": len(mine)})
        lines.append(_md(tab, ("env", "agent", "target", "margin_at_target", "worst_scheme", "worst_margin",
                               "resisting", "schemes")))
        for env_id, why in ex.get("skipped", {}).items():
            lines.append(f"skipped {env_id}: {why}")
    if results.get("learning"):
        lines += ["Learning with a language model (held-out success, mean [95% CI] over seeds):",
                  _md(results["learning"]["rows"], LEARNING_COLS, with_ci=True)]
    lines.append("Claims:")
    lines += [f"  [{c['status']}] {c['claim']} ({c['source']}): {c['numbers']}" for c in results.get("claims", [])]
    return "\n".join(lines)

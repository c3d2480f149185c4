"""Calibrate SGD's dependency decision on the labelled prompts (docs/methods.md, "Dependencies").

    python -m core.skeleton.calibrate --model embedded [--save] [--json out.json]

Each decider of ``core.skeleton.dependencies`` writes the dependency fields of every labelled prompt
(assets/prompts/graph.jsonl) with the prompt's own parts forced as the points, so the decision alone is scored:
edges' precision (against the labelled edges and what they imply: j -> k -> i implies j -> i) and recall (of the
labelled edges), and the waves: a dependent prompt is right in 2+ waves with a right edge, an independent one in
one wave. The margin's tau is tuned on the tuning split; the decider kept is the best on the tuning split (the
mean of the two rates, then the F1 of edges); all three are then measured on the test split, and the kept one
also end to end (the model writes its own points; a point counts as a part when they share a content word).
``--save`` writes the result for this model into assets/skeleton/dependencies.json, which SGD then reads.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import networkx as nx

from core.config import ModelSpec
from core.models import LoadedModel, load_model
from core.prompts import GraphPrompt, load_graph_prompts
from core.skeleton.dependencies import CALIBRATION, Decider, Literal, Margin
from core.skeleton.format import Skeleton, skeleton_graph, waves
from core.skeleton.writer import write_skeleton

TAUS = (-6.0, -4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0)
STOP = {"the", "a", "an", "of", "to", "and", "for", "on", "in", "with", "that", "those", "from", "my", "your"}


def implied(edges) -> set[tuple[int, int]]:
    """The labelled edges and every edge they imply (the transitive closure)."""
    g = nx.DiGraph(list(edges))
    return set(nx.transitive_closure_dag(g).edges()) if edges else set()


def edges_of(sk: Skeleton, match: Callable[[int], int | None] = lambda i: i) -> list[tuple[int, int]]:
    """The skeleton's edges (j, i), point indices mapped to part indices by ``match`` (None: no part)."""
    pairs = [(match(j), match(i)) for i, p in enumerate(sk.points) for j in p.depends]
    return [(j, i) for j, i in pairs if j is not None and i is not None and j != i]


def score(prompt: GraphPrompt, sk: Skeleton, match: Callable[[int], int | None] = lambda i: i) -> dict:
    """One prompt: edges found, right (implied by the labels), waves, and whether its graph shape is right."""
    found, right = edges_of(sk, match), implied(prompt.edges)
    n_waves = len(waves(skeleton_graph(sk)))
    good = sum(e in right for e in found)
    ok = (n_waves >= 2 and good > 0) if prompt.kind == "dependent" else n_waves == 1
    return {
        "id": prompt.id,
        "kind": prompt.kind,
        "waves": n_waves,
        "edges": [list(e) for e in found],
        "right_edges": good,
        "labelled_found": sum(e in set(found) for e in prompt.edges),
        "labelled": len(prompt.edges),
        "ok": ok,
    }


def summarise(rows: list[dict]) -> dict:
    """Precision and recall of edges, the share of dependent / independent prompts right, mean waves."""
    found = sum(len(r["edges"]) for r in rows)
    labelled = sum(r["labelled"] for r in rows)
    precision = sum(r["right_edges"] for r in rows) / found if found else None
    recall = sum(r["labelled_found"] for r in rows) / labelled if labelled else None
    out = {"precision": precision, "recall": recall, "prompts": len(rows)}
    for kind in ("dependent", "independent"):
        mine = [r for r in rows if r["kind"] == kind]
        out[f"{kind}_ok"] = sum(r["ok"] for r in mine) / len(mine) if mine else None
        out[f"{kind}_waves"] = sum(r["waves"] for r in mine) / len(mine) if mine else None
    p, r = precision or 0.0, recall or 0.0
    out["f1"] = 2 * p * r / (p + r) if p + r else 0.0
    rates = [out[k] for k in ("dependent_ok", "independent_ok") if out[k] is not None]
    out["score"] = sum(rates) / len(rates) if rates else 0.0
    return out


def evaluate(model: LoadedModel, decider: Decider, prompts: list[GraphPrompt]) -> tuple[dict, list[dict]]:
    """The decider on every prompt with its parts forced as the points: (summary, per prompt)."""
    rows = [score(p, write_skeleton(model, p.prompt, True, decider, given=list(p.parts))[0]) for p in prompts]
    return summarise(rows), rows


def part_matcher(titles: list[str], parts: tuple[str, ...]) -> Callable[[int], int | None]:
    """Point index -> the part sharing the most content words with its title (None when none is shared)."""

    def words(text: str) -> set[str]:
        return {w.rstrip("s") for w in re.findall(r"[a-z]+", text.lower()) if w not in STOP}

    part_words = [words(p) for p in parts]

    def match(i: int) -> int | None:
        shared = [len(words(titles[i]) & pw) for pw in part_words]
        return shared.index(max(shared)) if max(shared) > 0 else None

    return match


def end_to_end(model: LoadedModel, decider: Decider, prompts: list[GraphPrompt]) -> tuple[dict, list[dict]]:
    """The decider with the model writing its own points (as SGD runs): waves and edges, points matched to parts."""
    rows = []
    for p in prompts:
        sk, _ = write_skeleton(model, p.prompt, True, decider)
        row = score(p, sk, part_matcher([q.title for q in sk.points], p.parts))
        rows.append({**row, "titles": [q.title for q in sk.points]})
    return summarise(rows), rows


def best(results: dict[str, dict]) -> str:
    return max(results, key=lambda name: (results[name]["score"], results[name]["f1"]))


def calibrate(
    model: LoadedModel,
    tune: list[GraphPrompt] | None = None,
    test: list[GraphPrompt] | None = None,
    taus: tuple[float, ...] = TAUS,
    log: Callable[[str], None] = print,
) -> dict:
    """Tune, choose, measure (default: the labelled prompts' two splits): the record ``--save`` stores."""
    tune = load_graph_prompts("tune") if tune is None else tune
    test = load_graph_prompts("test") if test is None else test
    t0 = time.perf_counter()
    margins = {tau: evaluate(model, Margin(tau), tune)[0] for tau in taus}
    tau = max(taus, key=lambda t: (margins[t]["score"], margins[t]["f1"]))
    log("margin on the tuning split: " + ", ".join(f"tau {t:g}: {m['score']:.2f}" for t, m in margins.items()))
    deciders: dict[str, Decider] = {"instructions": Literal(False), "literal": Literal(True), "margin": Margin(tau)}
    tuned = {name: evaluate(model, deciders[name], tune)[0] for name in ("instructions", "literal")}
    tuned["margin"] = margins[tau]
    chosen = best(tuned)
    tested = {name: evaluate(model, d, test) for name, d in deciders.items()}
    e2e, e2e_rows = end_to_end(model, deciders[chosen], test)
    log(f"chose {chosen} (tau {tau:g}) in {time.perf_counter() - t0:.0f} s")
    return {
        "chosen": {"name": chosen, "tau": tau},
        "tune": {"margin_by_tau": {f"{t:g}": m for t, m in margins.items()}, **tuned},
        "test": {name: {**s, "per_prompt": rows} for name, (s, rows) in tested.items()},
        "end_to_end_test": {**e2e, "per_prompt": e2e_rows},
    }


def report(model_key: str, record: dict) -> str:
    """The three deciders on the test split, and the kept one end to end, as a table."""
    lines = [f"{model_key}: kept {record['chosen']['name']} (tau {record['chosen']['tau']:g})"]
    lines.append("  decider        precision  recall  dependent in 2+ waves  independent in 1  waves dep/ind")
    rows = {**record["test"], "end to end": record["end_to_end_test"]}
    for name, s in rows.items():
        pr = "-" if s["precision"] is None else f"{s['precision']:.2f}"
        lines.append(
            f"  {name:<14} {pr:>9}  {s['recall'] or 0:6.2f}  {s['dependent_ok']:21.2f}  {s['independent_ok']:16.2f}"
            f"  {s['dependent_waves']:.2f} / {s['independent_waves']:.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.skeleton.calibrate", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--save", action="store_true", help="store the result for this model in --file")
    parser.add_argument("--file", default=str(CALIBRATION), help="the calibration file SGD reads")
    parser.add_argument("--json", default="", help="also write the full record here")
    args = parser.parse_args(argv)
    try:
        model = load_model(ModelSpec(args.model, device=args.device, dtype=args.dtype))
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    record = {**calibrate(model), "command": "python -m core.skeleton.calibrate " + " ".join(argv or sys.argv[1:])}
    print(report(model.key, record))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)
    if args.save:
        path = Path(args.file)
        stored = json.loads(path.read_text()) if path.is_file() else {}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**stored, model.key: record}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

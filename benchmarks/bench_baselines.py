"""Per-row cost of the baselines on the politics experiment (CCES 2016 / ANES 1996 reference).

Builds the politics experiment's inputs as the pipeline does (instrument, US population spec,
built-in reference, ``--personas`` personas, the default randomized design), then, for each
baseline, in the same process and alternating over ``--reps`` rounds:

* ``build`` — constructing the backend (reading the reference into its tables), once per run;
* ``generate`` — the backend alone: one ``generate`` call per batch of 256 pre-rendered requests
  (the runner's batch size), on the backend just built (its per-question indexes included);
* ``administer`` — ``administer()`` end to end (build, render, call, parse, rows, parts), cache off.

Times are process CPU time (``time.process_time``: on a shared machine wall time mostly measures
the other processes); the wall time of ``generate`` is printed beside it.

With ``--slow`` the frozen copy of the reference baseline's earlier algorithm
(``tests/support/reference_v0.py``) runs beside the current one on the same requests, and its
answers are checked to be identical. Reports milliseconds per row (median of the rounds) and the
ratio to the majority baseline. Usage::

    python benchmarks/bench_baselines.py --personas 1000 --reps 3 --slow
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ["CI"] = "true"  # no progress bar

import pandas as pd
import yaml

from simsurvey.instruments import build_design, load_instrument
from simsurvey.instruments.config import DesignConfig, SurveyConfig
from simsurvey.paths import resolve_path
from simsurvey.population import sample_personas
from simsurvey.population.config import PopulationConfig
from simsurvey.population.spec import load_population_spec
from simsurvey.reference.load import load_reference_with_provenance
from simsurvey.respondents.config import ModelConfig, RunnerConfig
from simsurvey.respondents.prompt_config import PromptConfig
from simsurvey.respondents.registry import make_backend
from simsurvey.runner import administer

ROOT = Path(__file__).resolve().parents[1]
BASELINES = ("baseline/uniform", "baseline/majority", "baseline/reference")


def politics(n_personas: int, seed: int = 1):
    """The politics experiment's instrument, variables, reference, personas and design trials."""
    inst = load_instrument(resolve_path("surveys/politics.yaml", key="survey.instrument"))
    variables = load_population_spec(resolve_path("personas/us_adults.yaml", key="population.spec")).variables
    reference, _ = load_reference_with_provenance(inst, SurveyConfig(), variables)
    pop = yaml.safe_load((ROOT / "conf/population/us_adults.yaml").read_text())
    personas = sample_personas(PopulationConfig(**{**pop, "n": n_personas}), seed=seed, cue_style="attributes").frame
    design = DesignConfig(**yaml.safe_load((ROOT / "conf/design/default.yaml").read_text()))
    trials = build_design(personas, inst, design, seed=seed + 1)
    return inst, variables, reference, personas, trials


def requests_of(trials, personas, inst, variables, model: ModelConfig) -> list:
    """Rendered requests for ``trials``, with the persona's demographic codes as the runner passes them."""
    from simsurvey.population.variables import population_of
    from simsurvey.respondents.prompts import render_request

    cols = list(population_of(personas, None, variables).names)
    demo = {int(r["persona_id"]): {c: (None if pd.isna(r[c]) else r[c]) for c in cols}
            for r in personas[["persona_id", "cue", *cols]].to_dict("records")}
    cues = dict(zip(personas["persona_id"].astype(int), personas["cue"]))
    questions = {q.id: q for q in inst.questions}
    out = []
    for i, t in enumerate(trials.to_dict("records")):
        pid = None if pd.isna(t["persona_id"]) else int(t["persona_id"])
        out.append(render_request(cue=cues[pid] if pid is not None else None, question=questions[t["question_id"]],
                                  option_order=list(t["option_order"]), label_style=t["label_style"],
                                  prompt=PromptConfig(), model=model, seed=i,
                                  prefix_key=f"persona-{pid}" if pid is not None else None,
                                  context={"persona": demo.get(pid) if pid is not None else None}))
    return out


def generate_all(backend, reqs, size: int = 256) -> list:
    async def go():
        out = []
        for i in range(0, len(reqs), size):
            out.extend(await backend.generate(reqs[i:i + size]))
        return out

    return asyncio.run(go())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--personas", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--slow", action="store_true", help="also run the frozen earlier reference algorithm")
    ap.add_argument("--no-administer", action="store_true")
    args = ap.parse_args()

    inst, variables, reference, personas, trials = politics(args.personas)
    n = len(trials)
    print(f"politics: {args.personas} personas, {n:,} trials, {len(reference):,} reference rows", flush=True)
    cfgs = {name: ModelConfig(backend=name, name=name, elicitation="both") for name in BASELINES}
    reqs = requests_of(trials, personas, inst, variables, cfgs["baseline/uniform"])
    variants: dict[str, object] = dict(cfgs)
    if args.slow:
        sys.path.insert(0, str(ROOT / "tests" / "support"))
        from reference_v0 import ReferenceBackendV0

        variants["reference (earlier algorithm)"] = ReferenceBackendV0
    times: dict[tuple[str, str], list[float]] = {}
    answers: dict[str, list] = {}
    for rep in range(args.reps):
        for label, spec in variants.items():
            c0 = time.process_time()
            if isinstance(spec, ModelConfig):
                backend = make_backend(spec, seed=7, reference=reference, variables=variables)
            else:
                backend = spec(cfgs["baseline/reference"], reference=reference, seed=7, variables=variables)
            c1, w1 = time.process_time(), time.perf_counter()
            res = generate_all(backend, reqs)
            times.setdefault((label, "build"), []).append(c1 - c0)
            times.setdefault((label, "generate"), []).append(time.process_time() - c1)
            times.setdefault((label, "generate wall"), []).append(time.perf_counter() - w1)
            answers.setdefault(label, res)
            if not args.no_administer and isinstance(spec, ModelConfig):
                with tempfile.TemporaryDirectory() as tmp:
                    c0 = time.process_time()
                    out = administer(trials, personas, inst, model=spec, prompt=PromptConfig(),
                                     runner=RunnerConfig(cache=False), run_dir=Path(tmp), seed=7,
                                     reference=reference, progress=False, variables=variables)
                    times.setdefault((label, "administer"), []).append(time.process_time() - c0)
                    assert len(out.frame) == n, out.stats
            print(f"rep {rep} {label:<30} build {times[(label, 'build')][-1]:.2f} s CPU  " + "  ".join(
                f"{k}: {1000 * v[-1] / n:.3f} ms/row" for (lab, k), v in times.items() if lab == label and k != "build"),
                flush=True)
    if args.slow:
        same = answers["baseline/reference"] == answers["reference (earlier algorithm)"]
        print(f"\nreference vs earlier algorithm, {n:,} results: {'identical' if same else 'DIFFERENT'}")
        assert same
    print(f"\n{n:,} trials, median of {args.reps} (CPU; x = ratio to baseline/majority)\n")
    print("| backend | build s | generate ms/row | x | administer ms/row | x |")
    print("|---|---|---|---|---|---|")
    med = {k: statistics.median(v) for k, v in times.items()}
    for label in variants:
        cells = [f"{med[(label, 'build')]:.2f}"]
        for what in ("generate", "administer"):
            if (label, what) in med:
                base = med[("baseline/majority", what)]
                cells += [f"{1000 * med[(label, what)] / n:.3f}", f"{med[(label, what)] / base:.2f}"]
            else:
                cells += ["-", "-"]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

"""Benchmark: analyze() vs a straightforward pandas-groupby implementation of the same metrics.

Usage: python benchmarks/bench_analysis.py [--rows 1000000] [--naive-rows 100000] [--bootstrap 200]
       [--permutations 200] [--null-draws 1000] [--weights both|uniform|equal]
       python benchmarks/bench_analysis.py --read-path [--rows 1000000] [--old-commit a584223]

``--read-path`` measures reading responses.parquet for the analyzer and the report: a synthetic
responses.parquet of ``--rows`` rows (the full response schema, every row with a probs map) is read
and analyzed, and read into the report's data and distributions, by the code of ``--old-commit``
(``git archive`` into a temporary directory, first on PYTHONPATH: pandas read of the whole file,
probs as Python objects, the report's per-row loop) and by this checkout (pyarrow, column
projection, probs arrow-backed), each in a fresh process, side by side; the metrics must be equal.

Synthetic contract-shaped data (simsurvey.analysis.synthetic): 10 questions, 2 within-persona
conditions, 5 grouping variables. Persona weights are measured both ways, because the order-effect
permutation test depends on them: ``equal`` (all 1.0, as the population sampler writes them: the
exact hypergeometric shortcut on aggregated counts applies) and ``uniform`` (all distinct: condition
labels of rows are permuted, cost n_permutations x rows per pair).

Wall time is measured untraced; peak memory is the process's peak resident set size during the
call (VmHWM, reset before each call through /proc/self/clear_refs), reported as the increase
over the resident size before it (input frames excluded). tracemalloc is not used: it traces
every Python allocation and slowed the string-heavy code ~5x. The naive version groups with
pandas, scores each group with scipy and bootstraps with a Python loop over the B replicates;
the script asserts the point estimates agree.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy, wasserstein_distance

from simsurvey.analysis import AnalysisConfig, analyze
from simsurvey.analysis.synthetic import synthetic_run

GROUP_VARS = ["sex", "age", "race_ethnicity", "college", "region"]
NAIVE_METRICS = ["js_divergence", "total_variation", "entropy_norm_silicon", "entropy_norm_human",
                 "wasserstein_norm"]


def _naive_n_eff(df: pd.DataFrame, unit: str, codes: list[str]) -> float:
    """Linearized effective size with pandas (simsurvey.analysis.inference's formula)."""
    y = pd.crosstab(df[unit], df.answer_code).reindex(columns=codes, fill_value=0)
    w = df.groupby(unit).weight.first().reindex(y.index).to_numpy()
    y = y.to_numpy(float)
    m = y.sum(1)
    p = (w[:, None] * y).sum(0) / (w * m).sum()
    tr = (w[:, None] ** 2 * (y - m[:, None] * p) ** 2).sum() / (w * m).sum() ** 2
    return (1 - (p**2).sum()) / tr if tr > 0 else np.inf


def naive(responses: pd.DataFrame, reference: pd.DataFrame, personas: pd.DataFrame, inst, b: int,
          seed: int, null_draws: int) -> pd.DataFrame:
    """Point estimates and percentile CIs of a few metrics, one pandas group at a time, and the
    sampling null of JS (effective sizes with pandas, a Python loop over the null draws)."""
    rng = np.random.default_rng(seed)
    s = responses[responses.persona_id.notna()].merge(personas, on="persona_id")
    out = []
    for q in inst.questions:
        codes = list(q.substantive_codes)
        k = len(codes)
        sq = s[(s.question_id == q.id) & s.valid & s.answer_code.isin(codes)]
        hq = reference[(reference.question_id == q.id) & reference.answer_code.isin(codes)]
        for var in ["all", *GROUP_VARS]:
            sk = [sq.assign(all="all")] if var == "all" else None
            sgroups = dict(list(sq.assign(all="all").groupby(var)))
            hgroups = dict(list(hq.assign(all="all").groupby(var)))
            for value in sorted(set(sgroups) & set(hgroups)):
                sd = sgroups[value].groupby("answer_code").weight.sum().reindex(codes, fill_value=0).to_numpy()
                hd = hgroups[value].groupby("answer_code").weight.sum().reindex(codes, fill_value=0).to_numpy()
                p, h = sd / sd.sum(), hd / hd.sum()
                es = _naive_n_eff(sgroups[value], "persona_id", codes)
                eh = _naive_n_eff(hgroups[value], "respondent_id", codes)

                def mm(d, n):  # Miller–Madow, normalized, clipped to [0, 1]
                    return min(1.0, (entropy(d) + ((d > 0).sum() - 1) / (2 * n)) / np.log(k))

                def score(p, h):
                    r = {"js_divergence": jensenshannon(p, h, base=2) ** 2,
                         "total_variation": 0.5 * np.abs(p - h).sum(),
                         "entropy_norm_silicon": mm(p, es),
                         "entropy_norm_human": mm(h, eh)}
                    if q.kind == "ordinal":
                        r["wasserstein_norm"] = wasserstein_distance(range(k), range(k), p, h) / (k - 1)
                    return r

                point = score(p, h)
                ws, wh = sgroups[value].weight, hgroups[value].weight
                ns = int(round(ws.sum() ** 2 / (ws**2).sum()))
                nh = int(round(wh.sum() ** 2 / (wh**2).sum()))
                reps = [score(rng.multinomial(ns, p) / ns, rng.multinomial(nh, h) / nh) for _ in range(b)]
                pool = (es * p + eh * h) / (es + eh)
                ks, kh = int(round(es)), int(round(eh))
                null = [jensenshannon(rng.multinomial(ks, pool) / ks, rng.multinomial(kh, pool) / kh, base=2) ** 2
                        for _ in range(null_draws)]
                for name, v in point.items():
                    lo, hi = np.nanpercentile([r[name] for r in reps], [2.5, 97.5])
                    nm = float(np.mean(null)) if name == "js_divergence" else np.nan
                    pv = (1 + np.sum(np.array(null) >= v - 1e-12)) / (1 + null_draws) if name == "js_divergence" \
                        else np.nan
                    out.append((q.id, var, str(value), name, v, lo, hi, nm, pv, es))
            del sk
    return pd.DataFrame(out, columns=["question_id", "group_var", "group_value", "metric", "value", "ci_low",
                                      "ci_high", "null_mean", "p_value", "n_eff_silicon"])


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measure(fn):
    """(result, wall seconds, CPU seconds of the process, peak RSS increase in MiB during the call).

    CPU time is reported beside wall time because the machine is shared: under load the wall time
    of the same work varies 2x, its CPU time much less.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS (VmHWM) to the current RSS
    except OSError:
        pass
    before = _status_kib("VmRSS")
    t0, c0 = time.perf_counter(), time.process_time()
    res = fn()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return res, dt, cpu, max(_status_kib("VmHWM") - before, 0) / 1024


REPO = Path(__file__).resolve().parents[1]
READ_CFG = {"group_vars": GROUP_VARS, "bootstrap": 200, "n_permutations": 200, "null_draws": 1000,
            "distribution": "probs"}


def _write_read_path_run(run_dir: Path, rows: int) -> None:
    """A synthetic run directory: personas, reference and a responses.parquet of ``rows`` rows with
    the full response schema (a probs map on every row, raw text and prompt hashes as a model's)."""
    from simsurvey.io import write_parquet
    from simsurvey.runner import RESPONSE_SCHEMA

    n_personas = rows // 20  # 10 questions x 2 within-persona conditions
    personas, r, reference, _ = synthetic_run(
        n_personas=n_personas, n_human=max(2000, n_personas // 2), n_questions=10, seed=1, silicon_shift=0.3,
        primacy=0.1, no_persona=0, persona_weights="equal", with_probs=True)
    n = len(r)
    rng = np.random.default_rng(2)
    letters = np.array(list("ABCDEF"), dtype=object)
    r["raw_text"] = "The answer is " + pd.Series(letters[rng.integers(0, 6, n)]).to_numpy(dtype=object)
    r["prompt_hash"] = [f"{h:016x}" for h in rng.integers(0, 2**63, n)]
    r["latency_s"] = rng.uniform(0.05, 0.5, n)
    r["prompt_tokens"] = rng.integers(150, 300, n)
    r["completion_tokens"] = 1
    r["cost_usd"] = 0.0
    r["cached"] = False
    for col in RESPONSE_SCHEMA.names:
        if col not in r.columns:
            r[col] = None
    write_parquet(r[list(RESPONSE_SCHEMA.names)], run_dir / "responses.parquet", kind="responses",
                  schema=RESPONSE_SCHEMA)
    write_parquet(personas, run_dir / "personas.parquet", kind="personas")
    write_parquet(reference, run_dir / "reference.parquet", kind="reference")


def _read_path_child(run_dir: Path, code: str, what: str) -> None:
    """One measurement in this process: ``what`` is analyze or report; ``code`` old or new."""
    from simsurvey import io
    from simsurvey.analysis.synthetic import synthetic_instrument
    from simsurvey.report import _data
    from simsurvey.report._context import Ctx
    from simsurvey.report.config import ReportConfig

    inst = synthetic_instrument(10, 5)
    personas = pd.read_parquet(run_dir / "personas.parquet")
    reference = pd.read_parquet(run_dir / "reference.parquet")
    path = run_dir / "responses.parquet"
    cfg = AnalysisConfig(**READ_CFG)
    # Warm up imports and lazily loaded arrow kernels on a tiny run first.
    p0, r0, h0, i0 = synthetic_run(n_personas=200, n_human=400, n_questions=2, seed=0, with_probs=True)
    analyze(r0, h0, p0, i0, cfg, seed=0)
    if what == "analyze":
        def read():
            if code == "old":  # what the pipeline did: the whole file into pandas
                return io.read_stored_parquet(path, fix="")
            from simsurvey.analysis.frames import ANALYSIS_COLUMNS

            return io.read_responses(path, ANALYSIS_COLUMNS)

        def work():
            t0 = time.perf_counter()
            responses = read()
            t1 = time.perf_counter()
            res = analyze(responses, reference, personas, inst, cfg, seed=7)
            return res, t1 - t0, time.perf_counter() - t1

        (res, t_read, t_an), dt, cpu, peak = measure(work)
        res.metrics.to_parquet(run_dir / f"metrics_{code}.parquet")
        print(f"[read-path {code}] analyze: read {t_read:.2f}s + analyze {t_an:.2f}s = {dt:.2f}s wall, "
              f"{cpu:.2f}s CPU, peak RSS +{peak:.0f} MiB ({_status_kib('VmHWM') / 1024:.0f} MiB process peak)")
        return

    def report_data():
        # load_run + the per-question and per-condition distributions the sections draw.
        data = _data.load_run(run_dir, inst)
        ctx = Ctx(data, ReportConfig())
        out = []
        for m in ctx.models:
            for q in inst.questions:
                codes = list(q.substantive_codes)
                sq = ctx.silicon[(ctx.silicon["question_id"] == q.id) & (ctx.silicon["model"] == m)]
                out.append(_data.mean_distribution(sq, codes, use_probs=ctx.use_probs(m)))
                r = data.responses
                sub = r[(r["model"] == m) & (r["question_id"] == q.id)]
                for _, g in sub.groupby(sub["condition_id"].astype(str), sort=True):
                    out.append(_data.mean_distribution(g, codes, use_probs=ctx.use_probs(m)))
        return np.array(out)

    x, dt, cpu, peak = measure(report_data)
    np.save(run_dir / f"report_{code}.npy", x)
    print(f"[read-path {code}] report data (load_run, silicon answers, {len(x)} distributions): {dt:.2f}s wall, "
          f"{cpu:.2f}s CPU, peak RSS +{peak:.0f} MiB ({_status_kib('VmHWM') / 1024:.0f} MiB process peak)")


def read_path(rows: int, old_commit: str) -> None:
    """Old vs new read path, each measurement in a fresh process (module docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old_src = tmp / "old"
        old_src.mkdir()
        # The package and the data files it finds beside it (population specs, surveys, conf).
        archive = subprocess.run(["git", "-C", str(REPO), "archive", old_commit, "src", "personas", "surveys", "conf"],
                                 check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old_src)], input=archive, check=True)
        run_dir = tmp / "run"
        run_dir.mkdir()
        t0 = time.perf_counter()
        _write_read_path_run(run_dir, rows)
        size = (run_dir / "responses.parquet").stat().st_size / 2**20
        print(f"[read-path] wrote {rows:,}-row responses.parquet ({size:.0f} MiB) in {time.perf_counter() - t0:.1f}s")
        for what in ("analyze", "report"):
            for code, src in (("old", old_src / "src"), ("new", REPO / "src")):
                env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
                subprocess.run([sys.executable, __file__, "--read-child", f"{run_dir}:{code}:{what}"], check=True,
                               env=env)
        a, b = (pd.read_parquet(run_dir / f"metrics_{c}.parquet") for c in ("old", "new"))
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        np.testing.assert_allclose(np.load(run_dir / "report_new.npy"), np.load(run_dir / "report_old.npy"),
                                   rtol=1e-12, atol=0)
        print(f"[read-path] old and new: {len(a):,} metric rows identical; report distributions agree (rtol 1e-12)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--read-path", action="store_true", help="old vs new reading of responses.parquet")
    ap.add_argument("--old-commit", default="a584223", help="the code measured as 'old' by --read-path")
    ap.add_argument("--read-child", default=None, help=argparse.SUPPRESS)  # run_dir:code:what (one child)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--naive-rows", type=int, default=100_000)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--permutations", type=int, default=200)
    ap.add_argument("--null-draws", type=int, default=1000)
    ap.add_argument("--weights", choices=["both", "uniform", "equal"], default="both")
    ap.add_argument("--distribution", choices=["answers", "probs"], default="answers",
                    help="probs: every row carries a logprob map (as the local backend writes)")
    ap.add_argument("--run", default=None, help=argparse.SUPPRESS)  # label:rows:weights (one child)
    args = ap.parse_args()
    if args.read_child is not None:
        run_dir, code, what = args.read_child.rsplit(":", 2)
        _read_path_child(Path(run_dir), code, what)
        return
    if args.read_path:
        read_path(args.rows, args.old_commit)
        return
    n_q, n_cond = 10, 2
    cfg = AnalysisConfig(group_vars=GROUP_VARS, bootstrap=args.bootstrap, n_permutations=args.permutations,
                         distribution=args.distribution, null_draws=args.null_draws)
    weights = ["equal", "uniform"] if args.weights == "both" else [args.weights]
    if args.run is None:
        # Each measurement in a fresh process, so one run's freed memory and lazy imports do not
        # flatter the next one's peak.
        runs = [f"full:{args.rows}:{wt}" for wt in weights]
        if args.naive_rows and args.distribution == "answers":  # the naive version counts answer codes
            runs.append(f"naive-size:{args.naive_rows}:{weights[-1]}")
        passthru = ["--bootstrap", str(args.bootstrap), "--permutations", str(args.permutations),
                    "--distribution", args.distribution, "--null-draws", str(args.null_draws)]
        for run in runs:
            subprocess.run([sys.executable, __file__, *passthru, "--run", run], check=True)
        return
    label, rows_s, wt = args.run.split(":")
    rows = int(rows_s)
    # Warm up (imports, lazily loaded arrow kernels) on a tiny run before measuring.
    probs = args.distribution == "probs"
    p0, r0, h0, i0 = synthetic_run(n_personas=200, n_human=400, n_questions=2, seed=0, with_probs=probs)
    analyze(r0, h0, p0, i0, cfg, seed=0)
    n_personas = rows // (n_q * n_cond)
    t0 = time.perf_counter()
    personas, responses, reference, inst = synthetic_run(
        n_personas=n_personas, n_human=max(2000, n_personas // 2), n_questions=n_q, seed=1,
        silicon_shift=0.3, primacy=0.1, no_persona=0, persona_weights=wt,
        with_probs=probs)
    tag = f"{label}, {wt} persona weights, {args.distribution}"
    print(f"[{tag}] generated {len(responses):,} response rows, {len(reference):,} reference rows "
          f"in {time.perf_counter() - t0:.1f}s")
    res, dt, cpu, peak = measure(lambda: analyze(responses, reference, personas, inst, cfg, seed=7))
    print(f"[{tag}] analyze: {dt:.2f}s wall, {cpu:.2f}s CPU, peak RSS +{peak:.0f} MiB, "
          f"{len(res.metrics):,} metric rows, {len(res.order_effects)} order-effect rows")
    if label == "naive-size":
        nv, ndt, ncpu, npeak = measure(lambda: naive(responses, reference, personas, inst, args.bootstrap, 7,
                                                     args.null_draws))
        print(f"[{tag}] naive pandas groupby ({', '.join(NAIVE_METRICS)} only, JS null): {ndt:.2f}s wall, "
              f"{ncpu:.2f}s CPU, peak RSS +{npeak:.0f} MiB")
        m = res.metrics
        m = m[m.metric.isin(NAIVE_METRICS) & (m.model == "test/model")]
        j = m.merge(nv, on=["question_id", "group_var", "group_value", "metric"], suffixes=("", "_naive"))
        assert len(j) == len(nv), (len(j), len(nv))
        np.testing.assert_allclose(j.value, j.value_naive, rtol=1e-9, atol=1e-12)
        # CIs use different random draws: they agree only up to Monte Carlo error.
        width = (j.ci_high - j.ci_low).to_numpy()
        rel = np.median(np.abs(width - (j.ci_high_naive - j.ci_low_naive)) / np.maximum(width, 1e-12))
        print(f"[{tag}] {len(j)} point estimates agree (rtol 1e-9); median relative CI-width "
              f"difference {rel:.3f}")
        np.testing.assert_allclose(j.n_eff_silicon, j.n_eff_silicon_naive, rtol=1e-9)
        js = j[j.metric == "js_divergence"]
        nrel = np.median(np.abs(js.null_mean - js.null_mean_naive) / js.null_mean_naive)
        pdiff = np.median(np.abs(js.p_value - js.p_value_naive))
        print(f"[{tag}] {len(js)} effective sizes agree (rtol 1e-9); JS null means: median relative "
              f"difference {nrel:.3f}; p-values: median absolute difference {pdiff:.3f} (Monte Carlo)")


if __name__ == "__main__":
    main()

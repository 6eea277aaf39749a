"""The Ray Data pipeline of one pass: request rows in, result rows streamed back.

The request rows (in persona order) are cut into blocks of whole personas
(:func:`~simsurvey.runner.ray_executor._records.blocks`), each block becomes one Dataset block
(``ray.data.from_pandas`` of a list of frames), and the processor maps them:

* ``http`` / ``actor`` — ``map_batches(answer_block)`` with ``batch_size=None`` (one call per
  block: a persona's requests are answered by one worker), ``num_cpus=num_cpus_per_worker`` and
  ``concurrency=num_workers`` tasks at once. Tasks, not an actor pool: Ray keeps a task worker
  alive between Datasets, so the embedded model loaded in it serves every later pass, where an
  actor pool would be started (and the model loaded) again for every Dataset — measured here,
  ~18 s per pass for a two-actor pool vs ~0.6 s for a reused task pool (BENCHMARKS.md).
* ``vllm`` — ``ray.data.llm.build_processor(vLLMEngineProcessorConfig(...))`` with the pure
  mappings :func:`~simsurvey.runner.ray_executor._records.vllm_request` /
  :func:`~simsurvey.runner.ray_executor._records.vllm_result`.

Result blocks are yielded as they finish (``iter_batches``), so the driver writes each answer to
the cache while the rest are still being asked.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pandas as pd

from simsurvey.runner.ray_executor._records import (
    REQUEST_COLUMNS,
    RESULT_COLUMNS,
    blocks,
    result_row,
    vllm_request,
    vllm_result,
)
from simsurvey.runner.ray_executor._workers import WorkerSpec, answer_block


@functools.lru_cache(maxsize=1)
def _vllm_available() -> str | None:
    """None when vllm and a GPU are there, else why not (the vllm processor's precondition)."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return "the vllm package is not installed (pip install vllm)"
    try:
        import torch

        if not torch.cuda.is_available():
            return "no CUDA GPU is visible to torch"
    except ImportError:
        return "torch is not installed"
    return None


def dataset_of(rows: Sequence[Mapping[str, Any]], *, block_rows: int) -> Any:
    """A Ray Dataset of request rows, one block per group of whole personas."""
    import ray.data

    # Persona order (stable: a call's rows stay together and in order), so a block holds whole personas.
    ordered = sorted(rows, key=lambda r: (r["persona"], r["call"]))
    parts = [pd.DataFrame(b, columns=list(REQUEST_COLUMNS)) for b in blocks(ordered, block_rows)]
    return ray.data.from_pandas(parts)


def block_target(n: int, *, block_rows: int, num_workers: int) -> int:
    """Rows per block: ``block_rows``, raised so a pass is at most ~4 blocks per worker.

    A block is one Ray task (~0.3 s of scheduling on a busy machine, measured in BENCHMARKS.md);
    four per worker keep the load balanced while that cost stays small against the block's calls.
    """
    return max(int(block_rows), -(-n // max(1, 4 * num_workers)))


def _vllm_post(row: dict[str, Any], *, top_logprobs: int) -> dict[str, Any]:
    return result_row(row["key"], vllm_result(row, top_logprobs=top_logprobs), calls=1)


def vllm_processor(model: Mapping[str, Any], options: Mapping[str, Any]) -> Any:
    """The ``ray.data.llm`` vLLM engine processor (prefix caching on, logprobs requested).

    Args:
        model: The ``model:`` config as a dict.
        options: ``model_source``, ``engine_kwargs``, ``concurrency``, ``batch_size``.
    """
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    top = int(model.get("top_logprobs") or 20)
    engine = {"enable_prefix_caching": True, "max_logprobs": max(top, 20), **dict(options.get("engine_kwargs") or {})}
    config = vLLMEngineProcessorConfig(
        model_source=options["model_source"], engine_kwargs=engine,
        concurrency=int(options.get("concurrency") or 1), batch_size=int(options.get("batch_size") or 64),
        should_continue_on_error=True,  # one bad prompt is that row's error, not the run's
    )
    return build_processor(config, preprocess=functools.partial(vllm_request, top_logprobs=top),
                           postprocess=functools.partial(_vllm_post, top_logprobs=top))


def stream_answers(rows: Sequence[Mapping[str, Any]], spec: WorkerSpec, *, block_rows: int, num_workers: int,
                   num_cpus_per_worker: float, vllm: Mapping[str, Any] | None = None) -> Iterator[pd.DataFrame]:
    """Ask the request rows on Ray; yield result frames (``RESULT_COLUMNS``) as they finish.

    Runs on a thread of the driver (Ray's iterator blocks).
    """
    if not rows:
        return
    ds = dataset_of(rows, block_rows=block_target(len(rows), block_rows=block_rows, num_workers=num_workers))
    if spec.processor == "vllm":
        ds = vllm_processor(spec.model, vllm or {})(ds)
    else:
        ds = ds.map_batches(answer_block, batch_size=None, batch_format="pandas", fn_kwargs={"spec": spec},
                            num_cpus=num_cpus_per_worker, concurrency=max(1, num_workers))
    for batch in ds.iter_batches(batch_size=None, batch_format="pandas"):
        if len(batch):
            yield batch[list(RESULT_COLUMNS)]

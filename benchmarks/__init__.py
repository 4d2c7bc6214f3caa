"""Benchmark suite of seqgan_fast (DESIGN §8), importable as ``seqgan_fast.benchmarks``.

Entry point: :func:`seqgan_fast.benchmarks.harness.main` (``seqgan-fast bench ...``).
Modules: ``configs`` (paper / large / tiny sizes), ``baselines`` (the classic per-prefix
rollout loop and the ``torch.compile`` baseline), ``timing`` (round-robin timer, peak
memory, machine description), ``bench_<op>`` (contenders and correctness checks per op),
``report`` (ratios and the table), ``plot`` (bar chart from the JSON).
"""

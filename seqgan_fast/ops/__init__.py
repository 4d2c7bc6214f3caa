"""Ops with one Python entry point each and several backends (DESIGN §3):
``sample``, ``decode``, ``rollout`` (+ ``rollout_rewards``), ``score``, and the checks that
guard them (``first_non_finite``).

This package is the spine: it imports only the compiled extension (``seqgan_fast._ext``),
never the models, training or run code above it."""
from .backends import available_backends, is_available, resolve
from .cpu_isa import cpu_isa, cpu_isa_best, cpu_isa_paths, force_cpu_isa, set_cpu_isa
from .decode import decode
from .finite import first_non_finite
from .philox import philox4x32, to_uniform
from .rollout import rollout, rollout_rewards
from .sample import sample
from .sample_ref import canonical_sample
from .score import release_workspace as release_score_workspace
from .score import score
from .weights import LSTMWeights

__all__ = ["available_backends", "is_available", "resolve", "cpu_isa", "cpu_isa_best",
           "cpu_isa_paths", "force_cpu_isa", "set_cpu_isa", "decode", "rollout",
           "rollout_rewards", "sample", "score", "release_score_workspace", "canonical_sample",
           "first_non_finite", "philox4x32", "to_uniform", "LSTMWeights"]

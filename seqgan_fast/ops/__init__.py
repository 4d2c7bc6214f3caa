"""Ops with one Python entry point each and several backends (DESIGN §3):
``sample``, ``decode``, ``rollout`` (+ ``rollout_rewards``)."""
from .backends import available_backends, is_available, resolve
from .cpu_isa import cpu_isa, cpu_isa_best, cpu_isa_paths, force_cpu_isa, set_cpu_isa
from .decode import decode
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
           "philox4x32", "to_uniform", "LSTMWeights"]

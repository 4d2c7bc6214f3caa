"""seqgan_fast: SeqGAN (Yu et al., AAAI 2017) with fused sampling and rollout kernels."""
from . import ops
from ._version import __version__
from .config import TrainConfig
from .models import Discriminator, Generator, Oracle
from .train.trainer import SeqGANTrainer

__all__ = ["Generator", "Discriminator", "Oracle", "SeqGANTrainer", "TrainConfig", "ops",
           "__version__"]

"""seqgan_fast: SeqGAN (Yu et al., AAAI 2017) with fused sampling and rollout kernels."""
from . import ops
from .config import TrainConfig
from .models import Discriminator, Generator, Oracle
from .train.trainer import SeqGANTrainer

__version__ = "0.1.0"

__all__ = ["Generator", "Discriminator", "Oracle", "SeqGANTrainer", "TrainConfig", "ops",
           "__version__"]

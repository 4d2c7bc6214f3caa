"""seqgan_fast: SeqGAN (Yu et al., AAAI 2017) with fused sampling and rollout kernels."""
from . import ops
from .models import Discriminator, Generator, Oracle

__version__ = "0.1.0"

__all__ = ["Generator", "Discriminator", "Oracle", "ops", "__version__"]

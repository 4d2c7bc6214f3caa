"""SeqGAN's networks: the generator (LSTM/GRU, tied or separate encoder, with the
separate encoder's composition of the ops in encoded.py), the oracle and the CNN
discriminator."""
from .discriminator import PAPER_FILTER_SIZES, PAPER_NUM_FILTERS, Discriminator, Highway
from .generator import Generator
from .oracle import Oracle

__all__ = ["Generator", "Oracle", "Discriminator", "Highway", "PAPER_FILTER_SIZES",
           "PAPER_NUM_FILTERS"]

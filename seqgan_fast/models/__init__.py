"""SeqGAN's networks: the generator (LSTM/GRU, tied or separate encoder), the oracle and the
CNN discriminator."""
from .generator import (
    PAPER_FILTER_SIZES,
    PAPER_NUM_FILTERS,
    Discriminator,
    Generator,
    Highway,
    Oracle,
    initial_state,
    prefix_states,
)

__all__ = ["Generator", "Oracle", "Discriminator", "Highway", "PAPER_FILTER_SIZES",
           "PAPER_NUM_FILTERS", "prefix_states", "initial_state"]

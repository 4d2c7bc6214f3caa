"""Training configuration: one flat dataclass, named presets, ``key=value`` overrides."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .limits import check_limits, check_types


@dataclass
class TrainConfig:
    # --- task and data -------------------------------------------------------------------
    task: str = "oracle"                 # oracle | text | recsys
    data: str = "oracle"                 # "oracle" or a path (text file, .inter or .csv)
    test_data: str | None = None         # text: held-out file for nll_test / BLEU references
    oracle_params: str | None = None     # oracle: path to target_params.npz (else seeded N(0,1))
    oracle_seed: int = 0
    num_train: int = 10_000              # oracle: training sequences drawn from the oracle
    num_eval: int = 10_000               # samples for NLL_oracle / BLEU evaluation
    num_test: int = 0                    # oracle: held-out oracle samples for nll_test (0: off)
    tokenize: str = "word"               # text: word | char
    max_len: int = 20                    # text/recsys: sequence length (pad/truncate)
    min_count: int = 1                   # text/recsys: rarer tokens/items map to <unk>
    mask_history: bool = True            # recsys: exclude items the user already has
    topk: tuple[int, ...] = (5, 10, 20)  # recsys: HR@K / NDCG@K cut-offs
    columns: str | None = None           # recsys: "USER,ITEM[,ORDER...]" (None: auto-detect)
    # --- model ---------------------------------------------------------------------------
    vocab_size: int = 5000               # oracle task; data tasks take it from the data
    seq_len: int = 20
    g_emb_dim: int = 32
    g_hidden_dim: int = 32
    g_cell: str = "lstm"                 # generator RNN: lstm | gru (torch gate conventions)
    g_encoder: str = "tied"              # tied (the generator reads the history) | separate
    g_history: int = 0                   # separate encoder: its length, the positions it reads
                                         # (Generator.encoder_len; 0: history_len when
                                         # conditioning, else seq_len // 2)
    g_embeddings: str | None = None      # pretrained vectors (word2vec/GloVe text or .npy)
    g_embeddings_freeze: bool = False    # keep the pretrained embedding fixed
    d_emb_dim: int = 64
    d_filter_sizes: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20)
    d_num_filters: tuple[int, ...] = (100, 200, 200, 200, 200, 100, 100, 100, 100, 100, 160, 160)
    d_dropout_keep: float = 0.75
    d_l2_reg: float = 0.2
    # --- optimisation and schedule -------------------------------------------------------
    batch_size: int = 64
    g_lr: float = 0.01
    g_grad_clip: float = 5.0
    d_lr: float = 1e-4
    mle_epochs: int = 120
    d_pretrain_rounds: int = 50          # each: regenerate negatives, then d_epochs epochs
    d_epochs: int = 3
    d_num_negatives: int = 10_000
    adv_batches: int = 200
    adv_g_steps: int = 1
    adv_d_rounds: int = 5
    num_rollouts: int = 16
    rollout_update_rate: float = 0.8     # rollout_policy=delayed only
    # The generator's adversarial objective: adv_pg_weight * PG + adv_mle_weight * NLL(real)
    adv_pg_weight: float = 1.0           # lambda (1 with adv_mle_weight 0: SeqGAN)
    adv_mle_weight: float = 0.0          # beta: teacher-forced NLL of a real batch
    reward_baseline: str = "none"        # none | batch_mean (per position, over the batch)
    # History-conditioned generation: the first history_len positions of a real sequence are
    # given (teacher-forced), the rest generated, rolled out and rewarded, and D judges
    # (history, continuation) windows; 0 = generate whole sequences from the start token.
    history_len: int = 0
    # How the reference code (LantaoYu/SeqGAN) effectively trains
    # (docs/training-and-faithfulness.md).
    pg_norm: str = "sum"                 # PG loss: sum over all B*T positions | batch_mean
    rollout_policy: str = "current"      # rollouts by the generator itself | delayed copy
    mle_shuffle: bool = False            # reshuffle MLE batches every epoch (official: never)
    d_shuffle: str = "once"              # D data shuffled once per round | every epoch
    eval_schedule: str = "completed"     # label = epochs/batches done | official log's points
    temperature: float = 1.0
    # The run keeps a "best" generator by this validation metric (auto: recsys val_ndcg@10,
    # oracle nll_oracle, text nll_test if test_data; none: off); candidates are the final MLE
    # evaluation and every adversarial one. nll* is minimised, anything else maximised.
    select_metric: str = "auto"
    # A later candidate replaces the selected one only if its paired per-user gain on the
    # metric is more than this many standard errors (recsys; 0: any improvement). The MLE
    # end-point then stays selected unless an adversarial point beats it beyond noise.
    select_min_z: float = 0.0
    eval_every: int = 5                  # epochs (MLE) / batches (adversarial)
    checkpoint_every: int = 1            # checkpoint every this many evaluations (+ phase ends)
    # --- runtime ----------------------------------------------------------------------------
    seed: int = 0
    device: str = "cpu"
    backend: str = "auto"
    d_graph: str = "auto"                # CUDA: capture the D step in a CUDA graph | on | off
    tf32: bool = False                   # CUDA: TF32 matmuls/convolutions (beyond fp32 rounding)
    preset_name: str = "custom"          # which preset this config started from

    # ---------------------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> TrainConfig:
        """A named preset (see ``PRESETS``), optionally overridden."""
        if name not in PRESETS:
            raise ConfigError(
                f"unknown preset {name!r}; choose from {', '.join(sorted(PRESETS))}")
        cfg = cls(**{**PRESETS[name], "preset_name": name})
        return cfg.replace(**overrides) if overrides else cfg

    def replace(self, **changes: Any) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(self)}
        bad = sorted(set(changes) - names)
        if bad:
            raise ConfigError(f"unknown config key(s) {bad}")
        return dataclasses.replace(self, **changes)

    def with_overrides(self, items: list[str]) -> TrainConfig:
        """Apply ``key=value`` strings (as ``--set``), parsing values by the field's type."""
        changes = {}
        types = {f.name: f for f in dataclasses.fields(self)}
        for item in items:
            key, sep, raw = item.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ConfigError(f"--set expects key=value, got {item!r}")
            if key not in types:
                raise ConfigError(f"unknown config key {key!r} in --set {item!r}")
            changes[key] = _parse_value(key, raw.strip(), getattr(self, key), types[key])
        return self.replace(**changes)

    def validate(self) -> TrainConfig:
        """Check value ranges and names; raises ConfigError naming the key. Returns self."""
        def bad(key: str, why: str) -> ConfigError:
            return ConfigError(f"bad value {getattr(self, key)!r} for {key}: {why}")

        check_types(self)

        positive = ("vocab_size", "seq_len", "g_emb_dim", "g_hidden_dim", "d_emb_dim",
                    "batch_size", "num_train", "num_eval", "d_epochs", "d_num_negatives",
                    "adv_g_steps", "num_rollouts", "eval_every", "checkpoint_every", "max_len",
                    "min_count")
        non_negative = ("mle_epochs", "d_pretrain_rounds", "adv_batches", "adv_d_rounds",
                        "num_test", "seed", "oracle_seed", "history_len", "g_history")
        for key in positive:
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise bad(key, "expected an int >= 1")
        for key in non_negative:
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise bad(key, "expected an int >= 0")
        for key in ("g_lr", "d_lr", "g_grad_clip", "temperature"):
            if not float(getattr(self, key)) > 0:
                raise bad(key, "expected a number > 0")
        for key in ("adv_pg_weight", "adv_mle_weight", "select_min_z"):
            if not 0.0 <= float(getattr(self, key)) < float("inf"):
                raise bad(key, "expected a finite number >= 0")
        if self.adv_pg_weight == 0 and self.adv_mle_weight == 0:
            raise bad("adv_pg_weight", "adv_pg_weight and adv_mle_weight cannot both be 0")
        if not 0.0 <= self.rollout_update_rate <= 1.0:
            raise bad("rollout_update_rate", "expected a number in [0, 1]")
        if not 0.0 < self.d_dropout_keep <= 1.0:
            raise bad("d_dropout_keep", "expected a number in (0, 1]")
        if self.d_l2_reg < 0:
            raise bad("d_l2_reg", "expected a number >= 0")
        if len(self.d_filter_sizes) != len(self.d_num_filters) or not self.d_filter_sizes:
            raise ConfigError("d_filter_sizes and d_num_filters must be non-empty and of "
                              f"equal length, got {len(self.d_filter_sizes)} and "
                              f"{len(self.d_num_filters)}")
        if self.task not in ("oracle", "text", "recsys"):
            raise bad("task", "choose from oracle, text, recsys")
        if self.backend not in ("auto", "reference", "cpp", "triton", "cuda"):
            raise bad("backend", "choose from auto, reference, cpp, triton, cuda")
        if self.device.split(":")[0] not in ("cpu", "cuda"):
            raise bad("device", "choose from cpu, cuda (or cuda:N)")
        for key, choices in CHOICES.items():
            if getattr(self, key) not in choices:
                raise bad(key, f"choose from {', '.join(choices)}")
        for key in ("mle_shuffle", "tf32", "g_embeddings_freeze"):
            if not isinstance(getattr(self, key), bool):
                raise bad(key, "expected true or false")
        if self.g_history and self.g_encoder != "separate":
            raise bad("g_history", "the positions a separate encoder reads: set "
                      "g_encoder=separate, or leave g_history at 0")
        if self.g_encoder == "separate" and self.history_len and \
                self.g_history > self.history_len:
            raise bad("g_history", f"the encoder would read generated positions: it must not "
                      f"exceed history_len={self.history_len} (0: the same)")
        if self.d_graph == "on" and not self.device.startswith("cuda"):
            raise bad("d_graph", "CUDA graphs need device=cuda (auto: graphs where possible)")
        check_limits(self)
        return self

    def encoder_len(self) -> int | None:
        """The positions a separate encoder reads (``Generator(encoder_len=)``): g_history,
        else the conditioning history, else None (the model's seq_len // 2)."""
        return self.g_history or self.history_len or None

    def check_lengths(self, seq_len: int, recorded_encoder_len: int | None = None
                      ) -> int | None:
        """The two history lengths against the task's sequence length (known once its data
        is read; ``validate`` checks them against each other): ``history_len`` must leave a
        position to generate, a separate encoder read 1 to seq_len - 1 positions
        (``recorded_encoder_len``: a resumed run's, which wins). Returns the encoder length
        the generator is built with (None: the model's default). ConfigError names the key."""
        if self.history_len >= seq_len:
            raise ConfigError(f"bad value {self.history_len} for history_len: must be below "
                              f"the sequence length {seq_len}")
        if self.g_encoder != "separate":
            return self.encoder_len()
        L = recorded_encoder_len or self.encoder_len()
        if L is not None and not 1 <= L < seq_len:
            raise ConfigError(f"bad value {L} for g_history (or history_len): a separate "
                              f"encoder reads 1 to seq_len - 1 = {seq_len - 1} positions")
        return L

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        if not isinstance(d, dict):
            raise ConfigError(f"a config must be a JSON object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(d) - names)
        if bad:
            raise ConfigError(f"unknown config key(s) {bad}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**kwargs)


def _parse_value(key: str, raw: str, current: Any, f: dataclasses.Field) -> Any:
    annot = str(f.type)
    try:
        if isinstance(current, bool) or annot == "bool":
            low = raw.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if annot.startswith("tuple"):
            inner = raw.replace(" ", "").strip("()[]")
            return tuple(int(v) for v in inner.split(",") if v)
        if isinstance(current, int) or annot == "int":
            return int(raw)
        if isinstance(current, float) or annot == "float":
            return float(raw)
        if annot.startswith("str | None") and raw.lower() in ("", "none", "null"):
            return None
        return raw
    except ValueError:
        raise ConfigError(f"bad value {raw!r} for {key} (expected {annot})") from None


# Keys with a fixed set of values (the first is the default of the dataclass).
CHOICES: dict[str, tuple[str, ...]] = {
    "g_cell": ("lstm", "gru"),
    "g_encoder": ("tied", "separate"),
    "pg_norm": ("sum", "batch_mean"),
    "rollout_policy": ("current", "delayed"),
    "d_shuffle": ("once", "epoch"),
    "eval_schedule": ("completed", "official"),
    "d_graph": ("auto", "on", "off"),
    "reward_baseline": ("none", "batch_mean"),
}

# What the reference code (LantaoYu/SeqGAN) does, spelled out so that the paper preset keeps it
# if a default changes: PG loss summed over B*T, rollouts by the current generator (its delayed
# update is inert), MLE batches in a fixed order, D data shuffled once per round, and metrics
# at the points and with the labels of its experiment log.
OFFICIAL = dict(pg_norm="sum", rollout_policy="current", mle_shuffle=False, d_shuffle="once",
                eval_schedule="official")
# Real data files can be ordered (by source, user, length), so the data presets reshuffle MLE
# batches every epoch; the oracle's samples are i.i.d., where a fixed order costs nothing.
_DATA_ORDER = dict(mle_shuffle=True)

PRESETS: dict[str, dict[str, Any]] = {
    # The reference implementation's exact schedule on the synthetic oracle.
    "paper": dict(OFFICIAL),
    # Same algorithm, scaled to a few minutes on 2 CPU cores.
    # Every reduction, and why, is listed in docs/training-and-faithfulness.md ("Presets").
    # d_lr is 10x the paper's because the discriminator gets ~200x fewer steps; at 1e-4 it
    # stays at chance.
    "quick": dict(num_train=2000, num_eval=2000, mle_epochs=15, d_pretrain_rounds=3,
                  d_num_negatives=2000, adv_batches=15, adv_d_rounds=1, d_epochs=2,
                  d_lr=1e-3, eval_every=5,
                  d_num_filters=(50, 100, 100, 100, 100, 50, 50, 50, 50, 50, 80, 80)),
    # Text and recommendation presets (sizes tuned for CPU in issue 6).
    # CPU-sized (docs/training-and-faithfulness.md, "Datasets"): the text-GAN benchmarks run
    # 80 MLE + 100 adversarial epochs with the full discriminator; here 6 MLE epochs, 10
    # adversarial batches, 8 rollouts and a quarter-cost discriminator (half the filters,
    # d_emb_dim 32).
    "coco": dict(task="text", data="text/coco_train.txt", test_data="text/coco_test.txt",
                 tokenize="word", max_len=37, seq_len=37, num_eval=500, mle_epochs=6,
                 d_pretrain_rounds=3, d_num_negatives=2000, d_epochs=2, d_lr=1e-3,
                 adv_batches=10, adv_d_rounds=1, num_rollouts=8, eval_every=5, d_emb_dim=32,
                 d_num_filters=(50, 100, 100, 100, 100, 50, 50, 50, 50, 50, 80, 80),
                 **_DATA_ORDER),
    # Chinese quatrains, one character per token, punctuation kept (20 characters + 4 marks).
    "poems": dict(task="text", data="text/poems_train.txt", test_data="text/poems_test.txt",
                  tokenize="char", max_len=24, seq_len=24, num_eval=500, mle_epochs=6,
                  d_pretrain_rounds=3, d_num_negatives=2000, d_epochs=2, d_lr=1e-3,
                  adv_batches=10, adv_d_rounds=1, num_rollouts=8, eval_every=5, d_emb_dim=32,
                  d_num_filters=(50, 100, 100, 100, 100, 50, 50, 50, 50, 50, 80, 80),
                  **_DATA_ORDER),
    # Instacart orders: items seen < 5 times dropped (5,239 of 14,190 kept); no history mask
    # because 59% of held-out items are re-orders of an item the user already bought.
    # The adversarial phase is history-conditioned (the last 5 of 20 positions generated,
    # D judges (history, continuation)), keeps the likelihood term (adv_mle_weight 1 beside a
    # batch-mean PG with a batch-mean reward baseline) and is selected by val_ndcg@10 with the
    # MLE end-point as a candidate (docs/recommendation.md).
    "instacart": dict(task="recsys", data="recsys/instacart_sample.csv", max_len=20,
                      seq_len=20, min_count=5, mask_history=False, topk=(5, 10, 20),
                      mle_epochs=8, d_pretrain_rounds=3, d_num_negatives=2000, d_epochs=2,
                      d_lr=1e-3, adv_batches=15, adv_d_rounds=1, num_rollouts=8, eval_every=4,
                      d_emb_dim=32,
                      d_num_filters=(50, 100, 100, 100, 100, 50, 50, 50, 50, 50, 80, 80),
                      history_len=15, pg_norm="batch_mean", adv_mle_weight=1.0,
                      reward_baseline="batch_mean", select_min_z=2.0, **_DATA_ORDER),
    # Sequential recommendation on Amazon-style data read as the S3-Rec authors ship it (one
    # user per line, 'user item1 item2 ...'; default: Toys & Games from the shared data) under
    # the field's protocol: leave-one-out, full ranking, the user's earlier items masked. The
    # instacart preset's model and schedule for now (docs/recommendation.md: not yet at
    # SASRec's level).
    "seqrec": dict(task="recsys", data="recsys/toys_and_games.txt", max_len=20, seq_len=20,
                   min_count=1, mask_history=True, topk=(5, 10, 20), mle_epochs=8,
                   d_pretrain_rounds=3, d_num_negatives=2000, d_epochs=2, d_lr=1e-3,
                   adv_batches=15, adv_d_rounds=1, num_rollouts=8, eval_every=4, d_emb_dim=32,
                   d_num_filters=(50, 100, 100, 100, 100, 50, 50, 50, 50, 50, 80, 80),
                   history_len=15, pg_norm="batch_mean", adv_mle_weight=1.0,
                   reward_baseline="batch_mean", select_min_z=2.0, **_DATA_ORDER),
}

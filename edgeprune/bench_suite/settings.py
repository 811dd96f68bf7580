"""What one benchmark run compares, and how long it trains and times each variant."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from edgeprune.errors import EdgepruneError

REFERENCE_MODELS = ("lenet5", "resnet8")
REFERENCE_DATASETS = ("fashion_mnist", "mnist")
TFMOT_SPARSITIES = (0.5, 0.8)
EDGEPRUNE_RATIOS = (0.5, 0.7, 0.85)


@dataclass(frozen=True)
class BenchSettings:
    """Every variant of a (model, dataset) pair trains ``epochs + finetune_epochs`` epochs in total.

    ``epochs`` train the shared dense starting point; each variant then spends ``finetune_epochs``
    on its own recipe (dense: more plain training; TF-MOT: pruning schedule; edgeprune: fine-tune
    then QAT). ``None`` limits mean the full split.
    """

    models: tuple[str, ...] = REFERENCE_MODELS
    datasets: tuple[str, ...] = REFERENCE_DATASETS
    devices: tuple[str, ...] = ("host", "qemu-aarch64")
    epochs: int = 8
    finetune_epochs: int = 4
    qat_epochs: int = 1
    tfmot_sparsities: tuple[float, ...] = TFMOT_SPARSITIES
    edgeprune_ratios: tuple[float, ...] = EDGEPRUNE_RATIOS
    round_to: int = 4
    seed: int = 0
    batch_size: int = 128
    learning_rate: float = 1e-3
    finetune_learning_rate: float = 5e-4
    calibration_samples: int = 200
    max_train: int | None = None
    max_test: int | None = None
    max_val: int | None = None
    runs: int = 100          # timed inferences per variant and repetition on the host
    reps: int = 5            # repetitions; variants alternate within each repetition
    emulated_runs: int = 5   # per repetition under QEMU (instruction counts are deterministic)
    emulated_reps: int = 1
    warmup: int = 5
    quick: bool = False
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.epochs < 1:
            raise EdgepruneError(f"--epochs must be at least 1, got {self.epochs}", "pass a positive number")
        if self.finetune_epochs < 2 or self.qat_epochs < 1 or self.qat_epochs >= self.finetune_epochs:
            raise EdgepruneError(
                f"need finetune epochs ≥ 2 and 1 ≤ QAT epochs < finetune epochs "
                f"(got {self.finetune_epochs} and {self.qat_epochs})",
                "recipes with a QAT phase need at least one epoch before it",
            )
        if not self.models or not self.datasets:
            raise EdgepruneError("no models or no datasets to benchmark", "pass --models and --datasets")
        if min(self.runs, self.reps, self.emulated_runs, self.emulated_reps) < 1:
            raise EdgepruneError("runs and repetitions must be at least 1", "pass positive counts")
        for r in (*self.tfmot_sparsities, *self.edgeprune_ratios):
            if not 0 < r < 1:
                raise EdgepruneError(f"pruning level {r} is outside (0, 1)", "use fractions such as 0.5")

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.finetune_epochs

    def to_dict(self) -> dict:
        return asdict(self)


def quick_settings(**overrides) -> BenchSettings:
    """A smoke run: one model, one dataset, small real slices, one epoch each phase, host only."""
    base = dict(models=("lenet5",), datasets=("fashion_mnist",), devices=("host",), epochs=1, finetune_epochs=2,
                edgeprune_ratios=(0.5, 0.7),
                qat_epochs=1, max_train=2000, max_val=300, max_test=500, calibration_samples=50, runs=20, reps=2,
                emulated_runs=2, emulated_reps=1, warmup=2, quick=True)
    base.update({k: v for k, v in overrides.items() if v is not None})
    return BenchSettings(**base)


def full_settings(**overrides) -> BenchSettings:
    return BenchSettings(**{k: v for k, v in overrides.items() if v is not None})

"""One-shot evolutionary search of the group counts of binary MobileNet (papers.md §6).

Phan et al. (CVPR 2020) search, per layer of a binary MobileNetV1, the number of groups of its
3×3 convolution, in three phases; this module provides each of them for
``tflbnn.models.binary_mobilenet`` (the ``tflbnn search`` command chains them):

1. **One-shot supernet training.** ``binary_mobilenet(supernet=True)`` shares one full kernel
   per 3×3 conv between all group counts (``tflbnn.blocks.GroupSuperConv2D``);
   ``RandomGroupSampling`` selects a uniformly random configuration before every training
   step, so every sub-network gets trained through the shared weights.
2. **Evolutionary search** under a budget on OPs (``binary_mobilenet_ops``, analytical) or on
   latency measured in the LCE interpreter (``LatencyMeter``). ``SupernetEvaluator`` scores a
   configuration with the supernet's weights on held-out training images after recalibrating
   the batch-norm statistics for it. ``evolution_search`` keeps the best candidates, breeds
   the next population by mutation and crossover, saves its state after every evaluation
   and generation, and continues from that state when run again. ``pareto_front``,
   ``write_candidates_csv`` and ``plot_search`` report the candidates; ``random_configs``
   samples the random baseline at the same budget.
3. **Training the winner from scratch**: ``winner_builder`` gives the ``build_model(precision)``
   that ``tflbnn.training.two_step`` takes, e.g.::

       build = winner_builder(load_winner("runs/x/search/winner.json")["groups"],
                              input_shape=(28, 28, 1), num_classes=10, width=0.5, stem_stride=1)
       two_step(build, train_data, test_data, run_dir="runs/x/retrain", step1_epochs=...,
                step2_epochs=..., learning_rate=2e-3, teacher_epochs=...)

A configuration is a tuple of 13 group counts, one per block (``check_groups``).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from tflbnn import _backend  # noqa: F401

import numpy as np
import tensorflow as tf

from tflbnn import config_fields as fields
from tflbnn.blocks import GroupSuperConv2D
from tflbnn.metadata import write_bytes_atomic
from tflbnn.models.binary_mobilenet import binary_mobilenet, check_groups
from tflbnn.profiling import flatten_layers

__all__ = [
    "Config", "config_key", "parse_config_key",
    "supernet_layers", "supernet_choices", "supernet_groups", "set_supernet_groups",
    "RandomGroupSampling", "grouped_kernel", "copy_supernet_weights", "extract_subnet",
    "SupernetEvaluator", "LatencyMeter", "holdout_split",
    "random_config", "random_configs", "mutate", "crossover",
    "EvolutionSettings", "Candidate", "SearchResult", "evolution_search",
    "pareto_front", "write_candidates_csv", "plot_search", "winner_builder", "load_winner",
]

#: One group count per block.
Config = tuple[int, ...]

_STATE_VERSION = 1


def config_key(groups: Sequence[int]) -> str:
    """A configuration as text, e.g. ``"1-1-2-4"`` (used in CSV files and state keys)."""
    return "-".join(str(int(g)) for g in groups)


def parse_config_key(key: str) -> Config:
    """The inverse of ``config_key``.

    Raises:
        ValueError: if ``key`` is not dash-separated integers.
    """
    try:
        return tuple(int(part) for part in key.split("-"))
    except ValueError:
        raise ValueError(f"not a group configuration: {key!r} (expected e.g. '1-2-4')") from None


# ---------------------------------------------------------------------------------------------
# The supernet: selecting sub-networks, sampling them in training, extracting them.


def supernet_layers(model: tf.keras.Model) -> list[GroupSuperConv2D]:
    """The ``GroupSuperConv2D`` layers of ``model`` in model order (nested models walked into).

    Raises:
        ValueError: if the model has none (it is not a supernet).
    """
    layers = [layer for layer in flatten_layers(model) if isinstance(layer, GroupSuperConv2D)]
    if not layers:
        raise ValueError(f"model {model.name!r} has no GroupSuperConv2D layers; build the "
                         "supernet with binary_mobilenet(..., supernet=True)")
    return layers


def supernet_choices(model: tf.keras.Model) -> list[tuple[int, ...]]:
    """The group choices of each supernet layer: the search space."""
    return [layer.group_choices for layer in supernet_layers(model)]


def supernet_groups(model: tf.keras.Model) -> Config:
    """The currently selected configuration of a supernet."""
    return tuple(layer.groups_active for layer in supernet_layers(model))


def set_supernet_groups(model: tf.keras.Model, groups: Sequence[int]) -> None:
    """Select a configuration: ``groups[i]`` groups for the ``i``-th supernet layer.

    Raises:
        ValueError: for a wrong length or a group count a layer does not offer.
    """
    layers = supernet_layers(model)
    if len(groups) != len(layers):
        raise ValueError(f"model {model.name!r} has {len(layers)} supernet layers, got "
                         f"{len(groups)} group counts: {list(groups)}")
    for layer, g in zip(layers, groups):
        layer.set_groups(int(g))


class RandomGroupSampling(tf.keras.callbacks.Callback):
    """Select a uniformly random sub-network of a supernet before every training step.

    Each layer's choice is drawn independently and uniformly (one-shot training with "random
    group combinations at each conv layer", papers.md §6). The draws of epoch ``e`` come from
    ``numpy.random.default_rng([seed, e])``, so a run resumed at an epoch boundary replays
    the same sequence. The choice lives in the layers' non-trainable ``choice`` weights, which
    the compiled training step reads, so switching never retraces it. Validation runs on the
    fixed ``eval_groups``.

    Args:
        supernet: the supernet (default: the model being trained).
        seed: seed of the draws.
        eval_groups: configuration used for validation and left selected after training;
            default the largest (every layer's first choice, 1 group in ``binary_mobilenet``).
    """

    def __init__(self, supernet: tf.keras.Model | None = None, *, seed: int = 0,
                 eval_groups: Sequence[int] | None = None):
        super().__init__()
        self.supernet = supernet
        self.seed = int(seed)
        self.eval_groups = None if eval_groups is None else tuple(int(g) for g in eval_groups)
        self._rng = np.random.default_rng([self.seed, 0])
        self._layers: list[GroupSuperConv2D] = []

    def _target(self) -> tf.keras.Model:
        return self.supernet if self.supernet is not None else self.model

    def _select_eval_groups(self) -> None:
        target = self._target()
        groups = self.eval_groups or tuple(choices[0] for choices in supernet_choices(target))
        set_supernet_groups(target, groups)

    def on_train_begin(self, logs=None):
        self._layers = supernet_layers(self._target())
        if self.eval_groups is not None:
            set_supernet_groups(self._target(), self.eval_groups)  # fail early if invalid

    def on_epoch_begin(self, epoch, logs=None):
        self._rng = np.random.default_rng([self.seed, int(epoch)])

    def on_train_batch_begin(self, batch, logs=None):
        for layer in self._layers:
            layer.choice.assign(int(self._rng.integers(len(layer.group_choices))))

    def on_test_begin(self, logs=None):
        self._select_eval_groups()

    def on_train_end(self, logs=None):
        self._select_eval_groups()


def grouped_kernel(kernel: np.ndarray, groups: int) -> np.ndarray:
    """The kernel of a grouped conv from a supernet's full kernel.

    Filter ``j`` of a ``groups``-group conv sees input channels
    ``[(j // (F / groups)) · C / groups, ...)`` only; those are the entries
    ``GroupSuperConv2D`` keeps for it.

    Args:
        kernel: full kernel ``(kh, kw, C, F)``.
        groups: group count dividing ``C`` and ``F``.

    Returns:
        The grouped kernel ``(kh, kw, C / groups, F)``.

    Raises:
        ValueError: if ``groups`` does not divide the channels.
    """
    kernel = np.asarray(kernel)
    _, _, in_channels, filters = kernel.shape
    if groups < 1 or in_channels % groups or filters % groups:
        raise ValueError(f"grouped_kernel: {groups} groups do not divide a kernel of "
                         f"{in_channels} input channels and {filters} filters")
    per_group_in, per_group_out = in_channels // groups, filters // groups
    starts = (np.arange(filters) // per_group_out) * per_group_in
    rows = starts[None, :] + np.arange(per_group_in)[:, None]  # (C / groups, F)
    return kernel[:, :, rows, np.arange(filters)[None, :]]


def copy_supernet_weights(supernet: tf.keras.Model, target: tf.keras.Model) -> int:
    """Copy a supernet's weights into a sub-network with the same layer names.

    ``GroupSuperConv2D`` kernels become the grouped kernels of the target's convs of the same
    name (``grouped_kernel`` with the target layer's ``groups``); every other weight is copied
    as it is. The supernet's ``choice`` weights are not copied.

    Returns:
        The number of weight tensors written.

    Raises:
        ValueError: naming a target layer without a namesake, a group count the supernet layer
            does not offer, or a shape mismatch.
    """
    source_layers = {layer.name: layer for layer in flatten_layers(supernet)}
    copied = 0
    for layer in flatten_layers(target):
        if not layer.weights:
            continue
        origin = source_layers.get(layer.name)
        if origin is None:
            raise ValueError(f"copy_supernet_weights: layer {layer.name!r} of {target.name!r} "
                             f"has no namesake in {supernet.name!r}")
        if isinstance(origin, GroupSuperConv2D):
            groups = int(getattr(layer, "groups", 1))
            if groups not in origin.group_choices:
                raise ValueError(f"copy_supernet_weights: {layer.name!r} has {groups} groups; "
                                 f"the supernet layer offers {origin.group_choices}")
            values = [grouped_kernel(origin.kernel.numpy(), groups)]
        else:
            values = [weight.numpy() for weight in origin.weights]
        if len(values) != len(layer.weights):
            raise ValueError(f"copy_supernet_weights: {layer.name!r} has {len(layer.weights)} "
                             f"weights, its namesake in {supernet.name!r} {len(values)}")
        for weight, value in zip(layer.weights, values):
            if tuple(weight.shape) != value.shape:
                raise ValueError(f"copy_supernet_weights: {weight.name} has shape "
                                 f"{tuple(weight.shape)} but the supernet gives {value.shape}")
            weight.assign(value)
            copied += 1
    return copied


def extract_subnet(supernet: tf.keras.Model, groups: Sequence[int],
                   **options: Any) -> tf.keras.Model:
    """``binary_mobilenet(groups=groups, **options)`` with the supernet's weights.

    Args:
        supernet: a trained ``binary_mobilenet(..., supernet=True)``.
        groups: the configuration.
        **options: the supernet's ``binary_mobilenet`` options (``width``, ``stem_stride``,
            ``precision``, ``pad_values``); input shape and classes are the supernet's.

    Returns:
        The grouped model; its output equals the supernet's with ``groups`` selected (and
        the same batch-norm statistics).

    Raises:
        ValueError: for an invalid configuration or options that do not match the supernet.
    """
    model = binary_mobilenet(input_shape=tuple(supernet.input_shape[1:]),
                             num_classes=int(supernet.output_shape[-1]), groups=tuple(groups),
                             **options)
    copy_supernet_weights(supernet, model)
    return model


# ---------------------------------------------------------------------------------------------
# Scoring a configuration: accuracy with recalibrated batch norm, latency in LCE.


def _accuracy_counts(logits: np.ndarray, labels: np.ndarray) -> tuple[int, int]:
    labels = np.asarray(labels)
    if labels.ndim == 2:  # one-hot rows
        labels = labels.argmax(axis=-1)
    return int(np.sum(np.argmax(logits, axis=-1) == labels)), len(labels)


class SupernetEvaluator:
    """Top-1 accuracy of a configuration with the supernet's shared weights.

    Batch-norm statistics gathered while training the supernet mix every sub-network, so
    before scoring a configuration its statistics are recomputed: the moving means and
    variances are replaced by the average of the batch statistics over the same
    ``calibration_batches`` training batches (PyTorch's cumulative average,
    ``momentum=None``). This recalibration is standard one-shot NAS practice (Guo et al.,
    "Single Path One-Shot Neural Architecture Search", ECCV 2020, recompute the batch-norm
    statistics of every candidate on training batches). The configuration is then scored on
    held-out data, taken from the training set and not the test set, so that the search
    never sees the test images. The supernet's selection and statistics are restored
    afterwards, so scores do not depend on the order of evaluations.

    Args:
        supernet: a trained supernet.
        holdout_data: batched ``(images, labels)`` held-out data, iterated in a fixed order.
        calibration_data: batched training data; its first ``calibration_batches`` batches
            are read once and reused for every configuration.
        calibration_batches: number of recalibration batches.

    Raises:
        ValueError: if the model is not a supernet, has no batch norm, or the calibration
            data has no batch.
    """

    def __init__(self, supernet: tf.keras.Model, holdout_data: tf.data.Dataset,
                 calibration_data: tf.data.Dataset, *, calibration_batches: int = 20):
        if calibration_batches < 1:
            raise ValueError(f"SupernetEvaluator: calibration_batches must be >= 1, got "
                             f"{calibration_batches}")
        supernet_layers(supernet)
        self.supernet = supernet
        self.holdout_data = holdout_data
        self._calibration = [np.asarray(images) for images, _ in
                             calibration_data.take(calibration_batches)]
        if not self._calibration:
            raise ValueError("SupernetEvaluator: the calibration data yielded no batch")
        self._batch_norms = [layer for layer in flatten_layers(supernet)
                             if isinstance(layer, tf.keras.layers.BatchNormalization)]
        if not self._batch_norms:
            raise ValueError(f"SupernetEvaluator: {supernet.name!r} has no batch norm to "
                             "recalibrate")
        self._forward_training = tf.function(self._call_training, autograph=False)
        self._forward = tf.function(self._call_inference, autograph=False)

    def _call_training(self, images: tf.Tensor) -> tf.Tensor:
        return self.supernet(images, training=True)

    def _call_inference(self, images: tf.Tensor) -> tf.Tensor:
        return self.supernet(images, training=False)

    def recalibrate(self) -> None:
        """Recompute every batch-norm statistic for the selected configuration."""
        momenta = [layer.momentum for layer in self._batch_norms]
        sums = [[np.zeros(layer.moving_mean.shape), np.zeros(layer.moving_variance.shape)]
                for layer in self._batch_norms]
        try:
            # Momentum 0 makes the moving statistics the last batch's, which are summed here.
            # The compiled forward pass is only ever traced inside this window.
            for layer in self._batch_norms:
                layer.momentum = 0.0
            for images in self._calibration:
                self._forward_training(images)
                for layer, (mean, variance) in zip(self._batch_norms, sums):
                    mean += layer.moving_mean.numpy()
                    variance += layer.moving_variance.numpy()
        finally:
            for layer, momentum in zip(self._batch_norms, momenta):
                layer.momentum = momentum
        count = len(self._calibration)
        for layer, (mean, variance) in zip(self._batch_norms, sums):
            layer.moving_mean.assign(mean / count)
            layer.moving_variance.assign(variance / count)

    def __call__(self, groups: Sequence[int]) -> float:
        """Held-out top-1 accuracy of ``groups`` after batch-norm recalibration."""
        selected = supernet_groups(self.supernet)
        statistics = [(layer.moving_mean.numpy(), layer.moving_variance.numpy())
                      for layer in self._batch_norms]
        try:
            set_supernet_groups(self.supernet, groups)
            self.recalibrate()
            correct = total = 0
            for images, labels in self.holdout_data:
                hits, count = _accuracy_counts(self._forward(images).numpy(), labels.numpy())
                correct, total = correct + hits, total + count
        finally:
            set_supernet_groups(self.supernet, selected)
            for layer, (mean, variance) in zip(self._batch_norms, statistics):
                layer.moving_mean.assign(mean)
                layer.moving_variance.assign(variance)
        if total == 0:
            raise ValueError("SupernetEvaluator: the held-out data is empty")
        return correct / total


class LatencyMeter:
    """Median single-image latency of a configuration, converted to LCE (cached per config).

    The model ``build_model(groups)`` (weights do not matter for latency) is converted with
    ``tflbnn.converters.convert_lce`` and timed with ``benchmark_tflite`` using the
    indirect-BGEMM bconv kernel, the only fast LCE kernel on x86 that runs grouped binary
    convolutions (lce.md §2.2). Results are kept in ``cache`` (``config_key`` → ms), which a
    search persists, so each configuration is measured once and budget decisions stay
    consistent despite timing noise.

    Args:
        build_model: builds the (untrained) model of a configuration.
        num_runs: timed runs per measurement.
        warmup: untimed runs first.
        num_threads: interpreter threads.
        cache: earlier measurements to reuse.
    """

    def __init__(self, build_model: Callable[[Config], tf.keras.Model], *, num_runs: int = 30,
                 warmup: int = 5, num_threads: int = 1, cache: Mapping[str, float] | None = None):
        self.build_model = build_model
        self.num_runs = int(num_runs)
        self.warmup = int(warmup)
        self.num_threads = int(num_threads)
        self.cache: dict[str, float] = dict(cache or {})

    def __call__(self, groups: Sequence[int]) -> float:
        """Median latency in milliseconds."""
        from tflbnn.converters import benchmark_tflite, convert_lce

        key = config_key(groups)
        if key not in self.cache:
            flatbuffer = convert_lce(self.build_model(tuple(int(g) for g in groups)))
            stats = benchmark_tflite(flatbuffer, num_runs=self.num_runs, warmup=self.warmup,
                                     num_threads=self.num_threads, use_indirect_bgemm=True)
            self.cache[key] = stats.median_ms
        return self.cache[key]


def holdout_split(bundle, holdout: int):
    """A data bundle whose test split is ``holdout`` examples held out of the training set.

    The held-out examples are spread evenly over the training set in its unshuffled order
    (example ``i`` is held out when ``⌊i·n/N⌋ ≠ ⌊(i+1)·n/N⌋``), so the split is the same every
    run; the training split keeps the other ``N - n``. Searching on it leaves the real test
    set untouched.

    Args:
        bundle: a ``tflbnn.data.DataBundle``.
        holdout: number of training examples to hold out.

    Returns:
        A ``DataBundle``: ``train_dataset`` yields the remaining training examples,
        ``test_dataset`` / ``test_arrays`` the held-out ones.

    Raises:
        ValueError: unless ``0 < holdout < bundle.num_train``.
    """
    total, count = int(bundle.num_train), int(holdout)
    if not 0 < count < total:
        raise ValueError(f"holdout must be between 1 and {total - 1} (the training set has "
                         f"{total} examples), got {holdout}")

    def held_out(index):
        return tf.not_equal(index * count // total, (index + 1) * count // total)

    def part(keep_held_out: bool) -> tf.data.Dataset:
        source = bundle.train_source(False, None).enumerate()
        source = source.filter(lambda index, example: tf.equal(held_out(index), keep_held_out))
        source = source.map(lambda index, example: example)
        # A filter hides the length, which training needs for its steps per epoch.
        size = count if keep_held_out else total - count
        return source.apply(tf.data.experimental.assert_cardinality(size))

    return dataclasses.replace(bundle, num_train=total - count, num_test=count,
                               train_source=lambda shuffle_files, seed: part(False),
                               test_source=lambda: part(True))


# ---------------------------------------------------------------------------------------------
# Sampling and variation.


def _rng(seed_or_rng: int | np.random.Generator) -> np.random.Generator:
    if isinstance(seed_or_rng, np.random.Generator):
        return seed_or_rng
    return np.random.default_rng(seed_or_rng)


def random_config(choices: Sequence[Sequence[int]],
                  rng: int | np.random.Generator = 0) -> Config:
    """A uniformly random configuration: each block's count drawn from its choices."""
    rng = _rng(rng)
    return tuple(int(block[rng.integers(len(block))]) for block in choices)


def mutate(groups: Sequence[int], choices: Sequence[Sequence[int]],
           rng: int | np.random.Generator, probability: float) -> Config:
    """Change each block's group count with probability ``probability``.

    A changed block takes one of its *other* choices uniformly (blocks with a single choice
    never change). The result only holds counts from ``choices``, so it stays valid.
    """
    rng = _rng(rng)
    child = []
    for g, block in zip(groups, choices):
        others = [c for c in block if c != g]
        if others and rng.random() < probability:
            g = others[rng.integers(len(others))]
        child.append(int(g))
    return tuple(child)


def crossover(first: Sequence[int], second: Sequence[int],
              rng: int | np.random.Generator) -> Config:
    """Uniform crossover: each block's count from either parent with probability 1/2."""
    rng = _rng(rng)
    return tuple(int(a if rng.random() < 0.5 else b) for a, b in zip(first, second))


def _draw(propose: Callable[[], Config], accept: Callable[[Config], bool],
          seen: set, max_tries: int) -> Config | None:
    """Up to ``max_tries`` proposals; the first unseen accepted one (added to ``seen``)."""
    for _ in range(max_tries):
        config = propose()
        if config not in seen and accept(config):
            seen.add(config)
            return config
    return None


def _budget_check(cost: Callable[[Config], float] | None, max_cost: float | None,
                  min_cost: float | None) -> Callable[[Config], bool]:
    if cost is None and (max_cost is not None or min_cost is not None):
        raise ValueError("a cost bound needs a cost function")

    def accept(config: Config) -> bool:
        if cost is None:
            return True
        value = cost(config)
        return ((max_cost is None or value <= max_cost)
                and (min_cost is None or value >= min_cost))

    return accept


def random_configs(choices: Sequence[Sequence[int]], count: int, *,
                   rng: int | np.random.Generator = 0,
                   cost: Callable[[Config], float] | None = None,
                   max_cost: float | None = None, min_cost: float | None = None,
                   exclude: Sequence[Sequence[int]] = (), max_tries: int = 10_000) -> list[Config]:
    """Distinct uniformly random configurations whose cost lies in ``[min_cost, max_cost]``.

    The random baseline of a search: ``max_cost`` = the search budget, and ``min_cost`` a bit
    below it to sample "at" the budget rather than anywhere under it. Sampling is uniform
    over the configurations inside the bounds (rejection sampling).

    Args:
        choices: the search space.
        count: number of configurations.
        rng: seed or generator.
        cost: cost of a configuration (e.g. OPs); needed for the bounds.
        max_cost: upper bound (inclusive), ``None`` for none.
        min_cost: lower bound (inclusive), ``None`` for none.
        exclude: configurations not to return.
        max_tries: proposals per configuration before giving up.

    Returns:
        ``count`` distinct configurations.

    Raises:
        ValueError: if fewer than ``count`` are found within the tries (the bounds are too
            tight or the space too small).
    """
    rng = _rng(rng)
    accept = _budget_check(cost, max_cost, min_cost)
    seen = {tuple(int(g) for g in config) for config in exclude}
    found = []
    for _ in range(int(count)):
        config = _draw(lambda: random_config(choices, rng), accept, seen, max_tries)
        if config is None:
            raise ValueError(f"random_configs: found only {len(found)} of {count} distinct "
                             f"configurations with cost in [{min_cost}, {max_cost}] after "
                             f"{max_tries} tries for the next one")
        found.append(config)
    return found


# ---------------------------------------------------------------------------------------------
# Evolutionary search.


@dataclasses.dataclass(frozen=True)
class EvolutionSettings:
    """Settings of ``evolution_search`` (as in Single Path One-Shot's evolutionary search).

    Attributes:
        population: candidates per generation.
        generations: generations to evaluate (may be raised when resuming to search longer).
        parents: the best this many candidates evaluated so far breed the next generation.
        mutations: children made by mutating a random parent, per generation.
        crossovers: children made by crossing two random parents, per generation.
        mutation_probability: per-block probability of a mutation.
        seed: seed of every random draw of the search.
        max_tries: proposals per child before giving up on it (small or tight spaces).
    """

    population: int = 16
    generations: int = 8
    parents: int = 4
    mutations: int = 8
    crossovers: int = 8
    mutation_probability: float = 0.1
    seed: int = 0
    max_tries: int = 1000

    def __post_init__(self):
        checks = {**{name: fields.integer(1) for name in ("population", "generations",
                                                          "parents", "max_tries")},
                  **{name: fields.integer(0) for name in ("mutations", "crossovers", "seed")},
                  "mutation_probability": fields.number(above=0, at_most=1)}
        fields.check_fields(dataclasses.asdict(self), checks, "EvolutionSettings:")
        if self.mutations + self.crossovers > self.population:
            raise ValueError(f"EvolutionSettings: mutations + crossovers ({self.mutations} + "
                             f"{self.crossovers}) cannot exceed the population "
                             f"({self.population})")

    def fingerprint(self) -> dict[str, Any]:
        """The settings a saved search must share to be continued (all but ``generations``)."""
        return {key: value for key, value in dataclasses.asdict(self).items()
                if key != "generations"}


@dataclasses.dataclass(frozen=True)
class Candidate:
    """An evaluated configuration.

    Attributes:
        groups: the configuration.
        accuracy: its score (supernet held-out top-1 accuracy).
        ops: analytical OPs.
        cost: the budgeted measure (OPs, or latency in ms).
        generation: the generation it was first evaluated in (-1: not from the search).
        source: how it was made: "random", "mutation", "crossover" or "baseline".
    """

    groups: Config
    accuracy: float
    ops: float
    cost: float
    generation: int
    source: str

    @property
    def key(self) -> str:
        return config_key(self.groups)

    def as_dict(self) -> dict[str, Any]:
        return {"groups": list(self.groups), "accuracy": self.accuracy, "ops": self.ops,
                "cost": self.cost, "generation": self.generation, "source": self.source}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Candidate":
        return cls(groups=tuple(int(g) for g in data["groups"]),
                   accuracy=float(data["accuracy"]), ops=float(data["ops"]),
                   cost=float(data["cost"]), generation=int(data["generation"]),
                   source=str(data["source"]))


def _ranking(candidate: Candidate) -> tuple:
    # Best accuracy first; ties go to fewer OPs, then to the configuration text.
    return (-candidate.accuracy, candidate.ops, candidate.key)


@dataclasses.dataclass
class SearchResult:
    """Outcome of ``evolution_search``.

    Attributes:
        candidates: every evaluated configuration, in evaluation order.
        max_cost: the budget.
        cost_name: what the budget measures (``"ops"`` or ``"latency_ms"``).
        generations: generations evaluated.
    """

    candidates: list[Candidate]
    max_cost: float
    cost_name: str
    generations: int

    @property
    def winner(self) -> Candidate:
        """The most accurate candidate (every candidate is within the budget)."""
        return min(self.candidates, key=_ranking)

    def pareto(self) -> list[Candidate]:
        """The candidates on the Pareto front of OPs (lower) vs accuracy (higher)."""
        indices = pareto_front([(c.ops, c.accuracy) for c in self.candidates])
        return [self.candidates[index] for index in indices]


def _load_state(path: Path | None, fingerprint: dict) -> dict | None:
    if path is None or not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a readable search state ({error}); remove it to start "
                         "the search again") from None
    if state.get("version") != _STATE_VERSION or state.get("fingerprint") != fingerprint:
        raise ValueError(f"{path} holds a search with other settings (saved "
                         f"{state.get('fingerprint')}, asked {fingerprint}); use the same "
                         "settings to continue it, or remove the file to start again")
    return state


def _save_state(path: Path | None, state: dict) -> None:
    if path is not None:
        write_bytes_atomic(path, json.dumps(state, indent=1).encode())


def evolution_search(
    choices: Sequence[Sequence[int]],
    score: Callable[[Config], float],
    *,
    ops: Callable[[Config], float],
    max_cost: float,
    cost: Callable[[Config], float] | None = None,
    cost_name: str = "ops",
    settings: EvolutionSettings = EvolutionSettings(),
    state_path: str | os.PathLike | None = None,
    cost_cache: dict[str, float] | None = None,
    progress: bool = True,
) -> SearchResult:
    """Evolutionary search of the configuration with the best score within a budget.

    Generation 0 is ``population`` distinct random configurations within the budget. After
    each generation is scored, the ``parents`` best candidates evaluated so far breed the next:
    ``mutations`` children by ``mutate`` of a random parent, ``crossovers`` by ``crossover``
    of two random parents, and random configurations for the rest. Every child is within the
    budget and new (never evaluated, not twice in a population); a child not found in
    ``max_tries`` proposals is skipped, so small spaces give smaller generations.

    With ``state_path`` the search writes its state there as JSON (atomically) after every
    evaluation and generation: the candidates, the population and the random generator's
    state. Calling it again with the same settings continues where it stopped, reusing every
    score, and ends with the same result as an uninterrupted run; ``generations`` may be
    raised to search longer.

    Args:
        choices: the group counts each block may take.
        score: accuracy of a configuration (higher is better), e.g. a ``SupernetEvaluator``.
        ops: analytical OPs of a configuration (the Pareto front's axis).
        max_cost: the budget on ``cost`` (inclusive).
        cost: the budgeted measure; default ``ops``. E.g. a ``LatencyMeter``.
        cost_name: name of the measure for reports (``"ops"``, ``"latency_ms"``).
        settings: population sizes, generations, seed.
        state_path: JSON file for saving and resuming.
        cost_cache: a ``dict`` the cost function fills (``LatencyMeter.cache``); it is saved
            in the state and refilled from it on resumption, so costs are not measured again.
        progress: show a progress bar.

    Returns:
        A ``SearchResult``.

    Raises:
        ValueError: if no configuration fits the budget, or the state file belongs to a search
            with other settings.
    """
    from tqdm.auto import tqdm

    cost = cost or ops
    choices = [tuple(int(g) for g in block) for block in choices]
    state_path = Path(state_path) if state_path is not None else None
    fingerprint = json.loads(json.dumps({"choices": choices, "max_cost": float(max_cost),
                                         "cost_name": cost_name, **settings.fingerprint()}))
    state = _load_state(state_path, fingerprint)
    rng = np.random.default_rng(settings.seed)
    if state is None:
        state = {"version": _STATE_VERSION, "fingerprint": fingerprint, "generation": 0,
                 "population": None, "rng": None, "candidates": {}, "cost_cache": {}}
    else:
        if state["rng"] is not None:
            rng.bit_generator.state = state["rng"]
        if cost_cache is not None:
            cost_cache.update(state["cost_cache"])
    evaluated = {key: Candidate.from_dict(value) for key, value in state["candidates"].items()}
    within = _budget_check(cost, float(max_cost), None)

    def save() -> None:
        state["candidates"] = {key: c.as_dict() for key, c in evaluated.items()}
        if cost_cache is not None:
            state["cost_cache"] = dict(cost_cache)
        _save_state(state_path, state)

    def breed() -> list[tuple[Config, str]]:
        seen = set(parse_config_key(key) for key in evaluated)
        children: list[tuple[Config, str]] = []
        top = sorted(evaluated.values(), key=_ranking)[:settings.parents]
        if top:
            def mutant() -> Config:
                parent = top[rng.integers(len(top))].groups
                return mutate(parent, choices, rng, settings.mutation_probability)

            def cross() -> Config:
                first, second = rng.integers(len(top), size=2)
                return crossover(top[first].groups, top[second].groups, rng)

            for propose, number, source in ((mutant, settings.mutations, "mutation"),
                                            (cross, settings.crossovers, "crossover")):
                for _ in range(number):
                    child = _draw(propose, within, seen, settings.max_tries)
                    if child is not None:
                        children.append((child, source))
        while len(children) < settings.population:
            child = _draw(lambda: random_config(choices, rng), within, seen, settings.max_tries)
            if child is None:
                break
            children.append((child, "random"))
        return children

    bar = tqdm(total=settings.generations, initial=min(state["generation"], settings.generations),
               desc="group search", unit="generation", disable=not progress)
    try:
        while state["generation"] < settings.generations:
            generation = state["generation"]
            if state["population"] is None:
                population = breed()
                if generation == 0 and not population:
                    raise ValueError(f"no configuration within the budget {cost_name} <= "
                                     f"{max_cost} was found in {settings.max_tries} tries")
                state["population"] = [[list(config), source] for config, source in population]
                state["rng"] = rng.bit_generator.state
                save()
            for index, (config, source) in enumerate(state["population"]):
                config = tuple(config)
                key = config_key(config)
                if key not in evaluated:
                    evaluated[key] = Candidate(config, float(score(config)), float(ops(config)),
                                               float(cost(config)), generation, source)
                    save()
                best = min(evaluated.values(), key=_ranking)
                bar.set_postfix_str(f"gen {generation}: {index + 1}/{len(state['population'])}"
                                    f", best {best.accuracy:.4f}")
            state["generation"] = generation + 1
            state["population"] = None
            save()
            bar.update(1)
    finally:
        bar.close()
    if not evaluated:
        raise ValueError("the search evaluated no configuration")
    return SearchResult(candidates=list(evaluated.values()), max_cost=float(max_cost),
                        cost_name=cost_name, generations=state["generation"])


# ---------------------------------------------------------------------------------------------
# Reports.


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated ``(cost, accuracy)`` points, by increasing cost.

    A point is dominated when another has no higher cost and no lower accuracy, and is better
    in one of them. Equal points do not dominate each other, so both stay on the front.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1], i))
    front: list[int] = []
    best = -np.inf
    start = 0
    while start < len(order):
        end = start
        while end < len(order) and points[order[end]][0] == points[order[start]][0]:
            end += 1
        same_cost = order[start:end]
        top = points[same_cost[0]][1]  # the group's highest accuracy (sorted)
        if top > best:
            front.extend(i for i in same_cost if points[i][1] == top)
            best = top
        start = end
    return front


def write_candidates_csv(path: str | os.PathLike, candidates: Sequence[Candidate], *,
                         cost_name: str = "ops",
                         pareto: Sequence[Candidate] = ()) -> Path:
    """Write candidates as CSV, atomically: one row each, one column per block too.

    Columns: ``groups`` (``config_key``), ``accuracy``, ``ops``, ``cost_name`` (when it is not
    OPs), ``generation``, ``source``, ``pareto`` (1 when in ``pareto``) and ``block1`` ….

    Returns:
        The path written.
    """
    on_front = {candidate.key for candidate in pareto}
    blocks = max((len(c.groups) for c in candidates), default=0)
    header = ["groups", "accuracy", "ops"] + ([cost_name] if cost_name != "ops" else [])
    header += ["generation", "source", "pareto"] + [f"block{i}" for i in range(1, blocks + 1)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for c in candidates:
        row = [c.key, repr(c.accuracy), repr(c.ops)] + ([repr(c.cost)] if cost_name != "ops"
                                                       else [])
        row += [c.generation, c.source, int(c.key in on_front), *c.groups]
        writer.writerow(row)
    return write_bytes_atomic(path, buffer.getvalue().encode())


def plot_search(path: str | os.PathLike, result: SearchResult, *,
                baseline: Sequence[Candidate] = (), title: str = "") -> Path:
    """Accuracy against OPs: every candidate, the Pareto front, the winner and the baseline.

    Returns:
        The PNG path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tflbnn.training.history import save_figure

    figure, axis = plt.subplots(figsize=(7, 4.5))
    searched = result.candidates
    points = axis.scatter([c.ops for c in searched], [c.accuracy for c in searched], s=14,
                          c=[c.generation for c in searched], cmap="viridis",
                          label="search candidates")
    figure.colorbar(points, ax=axis, label="generation")
    front = result.pareto()
    axis.plot([c.ops for c in front], [c.accuracy for c in front], "-o", color="tab:red",
              markersize=4, drawstyle="steps-post", label="Pareto front")
    if baseline:
        axis.scatter([c.ops for c in baseline], [c.accuracy for c in baseline], marker="x",
                     color="tab:gray", label="random baseline")
    winner = result.winner
    axis.scatter([winner.ops], [winner.accuracy], marker="*", s=200, color="tab:orange",
                 zorder=3, label=f"winner {winner.key}")
    if result.cost_name == "ops":
        axis.axvline(result.max_cost, color="black", linestyle="--", linewidth=1,
                     label="OPs budget")
    axis.set_xlabel("OPs (BOPs/64 + FLOPs)")
    axis.set_ylabel("held-out top-1 accuracy (supernet)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    if title:
        axis.set_title(title)
    figure.tight_layout()
    return save_figure(figure, path)


# ---------------------------------------------------------------------------------------------
# Phase 3: the winner, trained from scratch.


def winner_builder(groups: Sequence[int], *, input_shape: tuple[int, int, int],
                   num_classes: int, **options: Any) -> Callable[[str], tf.keras.Model]:
    """The ``build_model(precision)`` of ``tflbnn.training.two_step`` for a configuration.

    Args:
        groups: the configuration (e.g. ``load_winner(path)["groups"]``).
        input_shape: ``(H, W, C)``.
        num_classes: number of logits.
        **options: other ``binary_mobilenet`` options (``width``, ``stem_stride``,
            ``pad_values``).

    Returns:
        ``build(precision)`` returning a fresh ``binary_mobilenet(groups=groups, ...)``.

    Raises:
        ValueError: for an invalid configuration (checked now, not at the first build).
    """
    config = check_groups(list(groups), options.get("width", 1.0))

    def build(precision: str) -> tf.keras.Model:
        return binary_mobilenet(input_shape=tuple(input_shape), num_classes=int(num_classes),
                                groups=config, precision=precision, **options)

    return build


def load_winner(path: str | os.PathLike) -> dict[str, Any]:
    """Read a search's ``winner.json``.

    Returns:
        The record; ``record["groups"]`` is the configuration as a tuple.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it is not a winner record.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"search winner not found: {path}")
    try:
        record = json.loads(path.read_text())
        record["groups"] = tuple(int(g) for g in record["groups"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError):
        raise ValueError(f"{path}: not a search winner record (JSON with 'groups')") from None
    return record

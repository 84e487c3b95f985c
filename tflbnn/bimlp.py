"""BiMLP layers and blocks (Xu, Chen, Wang, NeurIPS 2022; papers.md §2).

BiMLP binarises Wave-MLP: every fully-connected layer becomes a *Bi-FC*,

    ``LearnableBias → sign → binary conv → BN → + Uni-shortcut → RPReLU``,

written here on 4-D ``(batch, H, W, C)`` tensors with 1×1 ``QuantConv2D`` layers (LCE has no
binary dense kernel, lce.md §2.2). Two multi-branch binary blocks make up each WaveBlock:
MBB-1 (PATM token mixing, ``mbb1``) and MBB-2 (grouped 1×7 / 7×1 spatial Bi-FCs plus the channel
Bi-MLP, ``mbb2``).

Structure follows the released MindSpore code (``mindspore-ai/models``,
``research/cv/BiMLP/src/bimlp.py``), with these differences, all deliberate:

* Activations: the released ``QuanConv`` quantises activations with ``dorefa_a`` at 1 bit, i.e.
  ``rint(clip(x, -1, 1))`` with values in {-1, 0, +1} and no gradient rule, an inference-port
  simplification. Here the sign is ``sign(x + b)`` in {-1, +1} with ReActNet's ApproxSign
  gradient (``BinarySign``, ``tflbnn.layers.RSign``), which LCE turns into ``LceQuantize``.
* Weights: the released ``xnor`` quantiser scales ``sign(W)`` by ``mean|W|`` over the input
  axis only (one scale per output channel *and* kernel position) with an identity gradient.
  Here ``"reactnet_weight_sign"``: one ``mean|W|`` per output channel (what LCE's
  ``LceBconv2d`` can fuse) and the straight-through estimator through ``clip(W, -1, 1)``.
* Padding of the grouped 1×7 / 7×1 convolutions is zero, as in the code; the sign of the
  padding does not matter to LCE there because these convolutions run as float ops (below).
* The Bi-FC shortcut is the *shifted* input ``x + b`` (as the code adds ``move(x)``), except in
  the Bi-MLP, whose shortcuts take the unshifted input, again as in the code.

**Grouped binary convolutions and LCE.** The spatial Bi-FCs are grouped with one (1×7 / 7×1,
``groups = C``) or two (the 2C→C h/w fuse of PATM) input channels per group. LCE only makes
``LceBconv2d`` ops of grouped convolutions with a multiple of 32 input channels per group.
Measured with LCE 0.16.0: for 1 or 2 channels per group the converter prints
``error: Invalid binary grouped convolution: the number of input channels per-group must be a
multiple of 32`` for each such layer but does not fail; it keeps a float grouped ``CONV_2D``
(±alpha filters after ``LceQuantize``/``LceDequantize``), which the LCE interpreter runs
correctly but with a slow kernel (1×7 on 56×56×64, one thread, no XNNPACK, 2-core x86:
3.9 ms, vs 0.39 ms as a ``DEPTHWISE_CONV_2D``; 2C→C: 3.9 ms vs 1.25 ms).
``GroupedQuantConv2D`` therefore computes such convolutions exactly as a depthwise convolution
plus a sum over each group's input channels: same kernel variable, same ±1 inputs and ±alpha
kernel values, same outputs and gradients in Keras, and a clean conversion to float
``DEPTHWISE_CONV_2D`` ops. The conversion report lists them as not eligible for ``LceBconv2d``,
with their share of binary MACs (``tflbnn.converters.check_coverage``): 1.7% of BiMLP-S's
binary MACs at 224×224, more at small widths and inputs (12% at width 0.125 on 28×28).
"""

from __future__ import annotations

from tflbnn import _backend  # noqa: F401

import larq as lq
import tensorflow as tf

from tflbnn.blocks import (batch_norm, binary_conv, check_precision, quiet_weight_clip_warning,
                           sign_or_shift)
from tflbnn.layers import LearnableBias, RPReLU, channel_count
from tflbnn.quantizers import approx_sign_with_threshold

__all__ = [
    "BinarySign",
    "BranchMerge",
    "BranchReweight",
    "DropPath",
    "GroupedQuantConv2D",
    "NORMS",
    "PhaseModulation",
    "UniShortcut",
    "bi_fc",
    "bi_mlp",
    "downsample",
    "grouped_binary_conv",
    "mbb1",
    "mbb2",
    "norm_layer",
    "wave_block",
]

#: Normalisations of the BiMLP models: BiMLP-S uses BatchNorm, BiMLP-M GroupNorm(1, C).
NORMS = ("batch", "group")

# MindSpore's nn.GroupNorm default epsilon.
_GN_EPSILON = 1e-5
# The spatial Bi-FCs of Wave-MLP: 1x7 along the width ("h" branch), 7x1 along the height.
_SPATIAL_KERNELS = {"h": (1, 7), "w": (7, 1)}
# Max-pool sizes averaged by BiMLP's downsampling layer.
_DOWNSAMPLE_POOLS = (2, 3, 5, 7)


@lq.utils.register_keras_custom_object
class BinarySign(tf.keras.layers.Layer):
    """Parameter-free sign: ``+1`` where ``x >= 0`` else ``-1``, ApproxSign gradient.

    ``tflbnn.layers.RSign`` without its learnable shift, for Bi-FCs whose shortcut reuses the
    shifted input (a ``LearnableBias`` in front of this layer). Written as ``tf.where``, which LCE
    turns into ``LceQuantize``.
    """

    #: Output precision in bits, read by ``tflbnn.profiling`` to count binary MACs.
    precision = 1

    def call(self, inputs):
        return approx_sign_with_threshold(inputs)


@lq.utils.register_keras_custom_object
class UniShortcut(tf.keras.layers.Layer):
    """BiMLP's parameter-free "universal" shortcut from ``C_in`` to ``filters`` channels.

    * ``filters == C_in``: identity.
    * ``filters == k · C_in``: the input tiled ``k`` times along channels (output channel ``o``
      is input channel ``o mod C_in``).
    * ``C_in == k · filters``: the mean of ``k`` interleaved channel groups,
      ``(x[..., 0::k] + x[..., 1::k] + ... + x[..., k-1::k]) / k``.

    Args:
        filters: output channels.

    Raises:
        ValueError: (when built) if neither channel count divides the other.
    """

    def __init__(self, filters: int, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        if self.filters < 1:
            raise ValueError(f"{self.name}: filters must be positive, got {filters}")

    def build(self, input_shape):
        channels = channel_count(input_shape, self.name)
        if self.filters % channels and channels % self.filters:
            raise ValueError(f"{self.name}: a uni-shortcut needs one channel count to divide the "
                             f"other, got {channels} -> {self.filters}")
        self._in_channels = channels
        super().build(input_shape)

    def call(self, inputs):
        if self.filters > self._in_channels:
            multiples = [1] * (inputs.shape.rank - 1) + [self.filters // self._in_channels]
            return tf.tile(inputs, multiples)
        factor = self._in_channels // self.filters
        if factor == 1:
            return inputs
        return tf.add_n([inputs[..., start::factor] for start in range(factor)]) / factor

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)[:-1].concatenate([self.filters])

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@lq.utils.register_keras_custom_object
class GroupedQuantConv2D(lq.layers.QuantConv2D):
    """A grouped ``QuantConv2D`` computed as a depthwise convolution and a per-group sum.

    Same constructor, kernel variable ``(kh, kw, C_in / groups, filters)``, quantizers and
    outputs as ``larq.layers.QuantConv2D(groups=groups)``; only the computation differs: each
    input channel is convolved with its own slice of the kernel (``tf.nn.depthwise_conv2d``)
    and the results of a group's input channels are added. For one input channel per group
    that is the depthwise convolution itself.

    Use it for grouped binary convolutions that LCE cannot make ``LceBconv2d`` ops of (input
    channels per group not a multiple of 32, module docstring): they then convert to float
    ``DEPTHWISE_CONV_2D`` (+ ``STRIDED_SLICE``/``ADD_N``) ops instead of LCE's slow float
    grouped ``CONV_2D`` fall-back. Groups with a multiple of 32 channels should stay plain
    ``QuantConv2D`` layers, which LCE binarises.

    Raises:
        ValueError: (when built) for ``channels_first`` data or unequal strides.
    """

    def build(self, input_shape):
        if self.data_format != "channels_last":
            raise ValueError(f"{self.name}: GroupedQuantConv2D needs channels_last inputs")
        if self.strides[0] != self.strides[1]:
            raise ValueError(f"{self.name}: depthwise convolutions need equal strides, got "
                             f"{self.strides}")
        super().build(input_shape)

    def convolution_op(self, inputs, kernel):
        kernel_h, kernel_w, per_group, filters = kernel.shape
        out_per_group = filters // self.groups
        # Depthwise kernel (kh, kw, C_in, out_per_group): input channel g*per_group + t with
        # multiplier j takes the grouped kernel's [:, :, t, g*out_per_group + j].
        depthwise_kernel = tf.reshape(kernel, (kernel_h, kernel_w, per_group, self.groups,
                                               out_per_group))
        depthwise_kernel = tf.transpose(depthwise_kernel, (0, 1, 3, 2, 4))
        depthwise_kernel = tf.reshape(depthwise_kernel, (kernel_h, kernel_w,
                                                         self.groups * per_group, out_per_group))
        padding = self.padding.upper() if isinstance(self.padding, str) else self.padding
        outputs = tf.nn.depthwise_conv2d(
            inputs, depthwise_kernel, strides=(1, *self.strides, 1), padding=padding,
            dilations=self.dilation_rate)
        if per_group == 1:
            return outputs
        # The depthwise output channel of input channel g*per_group + t, multiplier j, is
        # (g*per_group + t)*out_per_group + j; group g's output j sums it over t.
        if out_per_group == 1:
            return tf.add_n([outputs[..., t::per_group] for t in range(per_group)])
        shape = tf.shape(outputs)
        outputs = tf.reshape(outputs, tf.concat(
            [shape[:-1], [self.groups, per_group, out_per_group]], axis=0))
        outputs = tf.reduce_sum(outputs, axis=-2)
        return tf.reshape(outputs, tf.concat([shape[:-1], [filters]], axis=0))

    def _jit_compiled_convolution_op(self, inputs, kernel):
        # Keras XLA-compiles grouped convolutions because TensorFlow's CPU kernels lack them;
        # the depthwise form above needs no such workaround.
        return self.convolution_op(inputs, kernel)


@lq.utils.register_keras_custom_object
class PhaseModulation(tf.keras.layers.Layer):
    """PATM's phase-aware token: ``[x · cos θ, x · sin θ]`` concatenated along channels.

    Called on ``[x, theta]`` of equal shapes; the output has twice the channels.
    """

    def build(self, input_shape):
        if len(input_shape) != 2 or tuple(input_shape[0]) != tuple(input_shape[1]):
            raise ValueError(f"{self.name}: expects [x, theta] of equal shapes, got "
                             f"{input_shape}")
        super().build(input_shape)

    def call(self, inputs):
        x, theta = inputs
        return tf.concat([x * tf.cos(theta), x * tf.sin(theta)], axis=-1)


@lq.utils.register_keras_custom_object
class BranchReweight(tf.keras.layers.Layer):
    """PATM's re-weighting: ``Σ_j branch_j · softmax_j(logits)`` over ``n`` branches.

    Called on ``[branch_1, ..., branch_n, logits]``: the branches ``(B, H, W, C)``, the logits
    ``(B, 1, 1, n·C)`` from the re-weighting MLP. Logit ``n·c + j`` belongs to channel ``c`` of
    branch ``j`` (the MindSpore code's ``reshape(B, C, 3)``), and the softmax runs over the
    ``n`` branches of each channel.
    """

    def build(self, input_shape):
        *branches, logits = input_shape
        channels = channel_count(branches[0], self.name)
        if len(branches) < 2 or any(tuple(shape) != tuple(branches[0]) for shape in branches):
            raise ValueError(f"{self.name}: expects at least two branches of equal shapes, got "
                             f"{branches}")
        if tuple(logits[1:]) != (1, 1, len(branches) * channels):
            raise ValueError(f"{self.name}: logits must have shape (batch, 1, 1, "
                             f"{len(branches) * channels}), got {logits}")
        self._channels = channels
        super().build(input_shape)

    def branch_weights(self, logits: tf.Tensor, num_branches: int) -> tf.Tensor:
        """Softmax weights ``(B, C, num_branches)`` from logits ``(B, 1, 1, num_branches·C)``."""
        logits = tf.reshape(logits, (-1, self._channels, num_branches))
        return tf.nn.softmax(logits, axis=-1)

    def call(self, inputs):
        *branches, logits = inputs
        weights = self.branch_weights(logits, len(branches))
        return tf.add_n([branch * tf.reshape(weights[..., index], (-1, 1, 1, self._channels))
                         for index, branch in enumerate(branches)])


@lq.utils.register_keras_custom_object
class BranchMerge(tf.keras.layers.Layer):
    """MBB-2's learnable merge: ``Σ_i w_i · other_i + (1 − Σ_i w_i) · base``, ``w`` init 0.

    Called on ``[base, other_1, ..., other_n]`` of equal shapes; ``w`` has ``n`` entries. In
    BiMLP ``base`` is the channel Bi-MLP and the others the 1×7 and 7×1 spatial branches.
    """

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"{self.name}: expects [base, other, ...], got {input_shape}")
        self.merge_weights = self.add_weight(name="weight", shape=(len(input_shape) - 1,),
                                             initializer="zeros")
        super().build(input_shape)

    def call(self, inputs):
        base, *others = inputs
        merged = (1.0 - tf.reduce_sum(self.merge_weights)) * base
        return merged + tf.add_n([self.merge_weights[index] * other
                                  for index, other in enumerate(others)])


@lq.utils.register_keras_custom_object
class DropPath(tf.keras.layers.Layer):
    """Stochastic depth: in training, zero a whole sample's branch with probability ``rate``.

    Kept samples are divided by ``1 - rate``; at inference the layer is the identity.

    Args:
        rate: drop probability in [0, 1).
    """

    def __init__(self, rate: float, **kwargs):
        super().__init__(**kwargs)
        self.rate = float(rate)
        if not 0.0 <= self.rate < 1.0:
            raise ValueError(f"{self.name}: rate must be in [0, 1), got {rate}")

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        keep = 1.0 - self.rate
        shape = tf.concat([tf.shape(inputs)[:1], tf.ones([inputs.shape.rank - 1], tf.int32)], 0)
        mask = tf.floor(keep + tf.random.uniform(shape, dtype=inputs.dtype))
        return inputs / keep * mask

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


def norm_layer(norm: str, name: str) -> tf.keras.layers.Layer:
    """The block normalisation: ``"batch"`` (PyTorch-default BN) or ``"group"`` (GroupNorm(1, C)).

    Raises:
        ValueError: for another ``norm``.
    """
    if norm == "batch":
        return batch_norm(name)
    if norm == "group":
        return tf.keras.layers.GroupNormalization(groups=1, epsilon=_GN_EPSILON, name=name)
    raise ValueError(f"{name}: norm must be one of {NORMS}, got {norm!r}")


def grouped_binary_conv(filters: int, kernel_size: tuple[int, int], *, groups: int,
                        binary_weights: bool = True, name: str) -> GroupedQuantConv2D:
    """A grouped, zero-padded, stride-1 ``GroupedQuantConv2D`` for ±1 inputs.

    Args:
        filters: output channels.
        kernel_size: ``(kh, kw)``.
        groups: number of groups.
        binary_weights: binarise the kernel with ``reactnet_weight_sign``; ``False`` keeps it
            real-valued (step 1 and the float twin).
        name: layer name.

    Returns:
        The (unbuilt) layer.
    """
    with quiet_weight_clip_warning():
        return GroupedQuantConv2D(
            filters, kernel_size, groups=groups, padding="same", use_bias=False,
            input_quantizer=None,
            kernel_quantizer="reactnet_weight_sign" if binary_weights else None, name=name)


def _sign(x: tf.Tensor, precision: str, name: str) -> tf.Tensor:
    return x if precision == "float" else BinarySign(name=name)(x)


def bi_fc(
    x: tf.Tensor,
    filters: int,
    *,
    precision: str = "binary",
    kernel_size: tuple[int, int] = (1, 1),
    groups: int = 1,
    name: str,
) -> tf.Tensor:
    """A Bi-FC: ``LearnableBias → sign → binary conv → BN → + shortcut → RPReLU``.

    The shortcut is ``UniShortcut(filters)`` of the shifted input (the identity when the channel
    counts agree).

    ``groups == 1`` with a 1×1 kernel is the binary fully-connected layer (``LceBconv2d`` after
    conversion); the grouped form is a ``GroupedQuantConv2D`` (float after conversion).

    Args:
        x: input ``(batch, H, W, C)``.
        filters: output channels; ``filters`` and ``C`` must divide one another.
        precision: one of ``tflbnn.blocks.PRECISIONS``; ``"float"`` drops the sign and keeps
            real weights, ``"binary_activations"`` keeps real weights.
        kernel_size: ``(kh, kw)``; 1×1 unless grouped.
        groups: convolution groups.
        name: prefix of the layer names.

    Returns:
        Output with ``filters`` channels.

    Raises:
        ValueError: for an unknown precision, a spatial kernel without groups, or channel counts
            that a uni-shortcut cannot join.
    """
    check_precision(precision, name)
    kernel_size = tuple(int(size) for size in kernel_size)
    in_channels = int(x.shape[-1])
    if groups == 1 and kernel_size != (1, 1):
        raise ValueError(f"{name}: an ungrouped Bi-FC is 1x1, got kernel {kernel_size}")
    binary_weights = precision == "binary"
    shifted = LearnableBias(name=f"{name}_move")(x)
    y = _sign(shifted, precision, f"{name}_sign")
    if groups == 1:
        conv = binary_conv(filters, 1, binary_weights=binary_weights, name=f"{name}_conv")
    else:
        conv = grouped_binary_conv(filters, kernel_size, groups=groups,
                                   binary_weights=binary_weights, name=f"{name}_conv")
    y = batch_norm(f"{name}_bn")(conv(y))
    shortcut = shifted
    if filters != in_channels:
        shortcut = UniShortcut(filters, name=f"{name}_shortcut")(shifted)
    y = tf.keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return RPReLU(name=f"{name}_rprelu")(y)


def bi_mlp(
    x: tf.Tensor,
    hidden: int,
    out: int,
    *,
    precision: str = "binary",
    name: str,
) -> tf.Tensor:
    """BiMLP's channel Bi-MLP ``C → hidden → out``: two 1×1 Bi-FCs with uni-shortcuts.

    As the MindSpore ``Mlp``: the first shortcut is ``UniShortcut(hidden)(x)`` followed by BN and
    RPReLU; the second is ``UniShortcut(out)`` of the hidden activation. Both shortcuts take the
    unshifted input (``RSign`` carries the shift).

    Args:
        x: input ``(batch, H, W, C)``.
        hidden: hidden channels (``4C`` in MBB-2, ``C/4`` in PATM's re-weighting).
        out: output channels (``C`` in MBB-2, ``3C`` in the re-weighting).
        precision: one of ``tflbnn.blocks.PRECISIONS``.
        name: prefix of the layer names.

    Returns:
        Output with ``out`` channels.

    Raises:
        ValueError: for an unknown precision or channel counts a uni-shortcut cannot join.
    """
    check_precision(precision, name)
    binary_weights = precision == "binary"
    shortcut = UniShortcut(hidden, name=f"{name}_shortcut1")(x)
    shortcut = batch_norm(f"{name}_shortcut1_bn")(shortcut)
    shortcut = RPReLU(name=f"{name}_shortcut1_rprelu")(shortcut)
    y = sign_or_shift(precision, f"{name}_rsign1")(x)
    y = binary_conv(hidden, 1, binary_weights=binary_weights, name=f"{name}_fc1")(y)
    y = batch_norm(f"{name}_bn1")(y)
    y = tf.keras.layers.Add(name=f"{name}_add1")([y, shortcut])
    y = RPReLU(name=f"{name}_rprelu1")(y)

    shortcut = UniShortcut(out, name=f"{name}_shortcut2")(y)
    z = sign_or_shift(precision, f"{name}_rsign2")(y)
    z = binary_conv(out, 1, binary_weights=binary_weights, name=f"{name}_fc2")(z)
    z = batch_norm(f"{name}_bn2")(z)
    z = tf.keras.layers.Add(name=f"{name}_add2")([z, shortcut])
    return RPReLU(name=f"{name}_rprelu2")(z)


def mbb1(x: tf.Tensor, *, precision: str = "binary", name: str) -> tf.Tensor:
    """MBB-1: PATM token mixing with binary FCs (MindSpore ``PATM``, mode ``"fc"``).

    * phases ``θ_h, θ_w``: 1×1 Bi-FCs ``C → C``;
    * h / w branches: 1×1 Bi-FCs, then ``[x · cos θ, x · sin θ]`` (2C channels), then a grouped
      Bi-FC ``2C → C`` (``groups = C``, 1×7 for h, 7×1 for w) whose shortcut is
      ``(x[..., 0::2] + x[..., 1::2]) / 2``;
    * channel branch ``c``: a 1×1 Bi-FC;
    * re-weighting: ``Bi-MLP(C → C/4 → 3C)`` of ``GAP(h + w + c + x)``, softmax over the three
      branches per channel; ``h·a_0 + w·a_1 + c·a_2 + x``;
    * projection: a 1×1 Bi-FC.

    Args:
        x: input ``(batch, H, W, C)`` with ``C`` a multiple of 4.
        precision: one of ``tflbnn.blocks.PRECISIONS``.
        name: prefix of the layer names.

    Returns:
        Output with ``C`` channels.

    Raises:
        ValueError: for an unknown precision or ``C`` not a multiple of 4.
    """
    channels = int(x.shape[-1])
    if channels % 4:
        raise ValueError(f"{name}: PATM's re-weighting MLP needs channels divisible by 4, got "
                         f"{channels}")
    branches = []
    for axis in ("h", "w"):
        theta = bi_fc(x, channels, precision=precision, name=f"{name}_theta_{axis}")
        token = bi_fc(x, channels, precision=precision, name=f"{name}_fc_{axis}")
        token = PhaseModulation(name=f"{name}_phase_{axis}")([token, theta])
        branches.append(bi_fc(token, channels, precision=precision,
                              kernel_size=_SPATIAL_KERNELS[axis], groups=channels,
                              name=f"{name}_tfc_{axis}"))
    branches.append(bi_fc(x, channels, precision=precision, name=f"{name}_fc_c"))

    pooled = tf.keras.layers.Add(name=f"{name}_branch_sum")([*branches, x])
    pooled = tf.keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(pooled)
    logits = bi_mlp(pooled, channels // 4, 3 * channels, precision=precision,
                    name=f"{name}_reweight")
    mixed = BranchReweight(name=f"{name}_mix")([*branches, logits])
    mixed = tf.keras.layers.Add(name=f"{name}_residual")([mixed, x])
    return bi_fc(mixed, channels, precision=precision, name=f"{name}_proj")


def mbb2(x: tf.Tensor, *, mlp_ratio: int = 4, precision: str = "binary", name: str) -> tf.Tensor:
    """MBB-2: grouped 1×7 and 7×1 spatial Bi-FCs and the channel Bi-MLP, merged.

    ``a = Bi-MLP(C → ratio·C → C)``, ``b`` / ``c`` = grouped (``groups = C``) 1×7 / 7×1
    Bi-FCs; output ``w_0·b + w_1·c + (1 − w_0 − w_1)·a`` with learnable ``w`` initialised at 0
    (MindSpore ``WaveBlock``'s second half, without its residual).

    Args:
        x: input ``(batch, H, W, C)``.
        mlp_ratio: hidden expansion of the Bi-MLP.
        precision: one of ``tflbnn.blocks.PRECISIONS``.
        name: prefix of the layer names.

    Returns:
        Output with ``C`` channels.
    """
    channels = int(x.shape[-1])
    mlp = bi_mlp(x, int(channels * mlp_ratio), channels, precision=precision, name=f"{name}_mlp")
    spatial = [bi_fc(x, channels, precision=precision, kernel_size=_SPATIAL_KERNELS[axis],
                     groups=channels, name=f"{name}_sfc_{axis}") for axis in ("h", "w")]
    return BranchMerge(name=f"{name}_merge")([mlp, *spatial])


def wave_block(
    x: tf.Tensor,
    *,
    mlp_ratio: int = 4,
    norm: str = "batch",
    precision: str = "binary",
    drop_path_rate: float = 0.0,
    name: str,
) -> tf.Tensor:
    """A BiMLP WaveBlock: ``x + MBB-1(norm(x))`` then ``+ MBB-2(norm(·))``, with drop-path.

    Args:
        x: input ``(batch, H, W, C)``.
        mlp_ratio: hidden expansion of MBB-2's Bi-MLP.
        norm: ``"batch"`` or ``"group"`` for the two pre-norms (the layers inside the MBBs are
            BatchNorm in either case, as in the code).
        precision: one of ``tflbnn.blocks.PRECISIONS``.
        drop_path_rate: stochastic-depth probability of both residual branches (0: no layer).
        name: prefix of the layer names.

    Returns:
        Output with ``C`` channels.
    """
    y = mbb1(norm_layer(norm, f"{name}_norm1")(x), precision=precision, name=f"{name}_mbb1")
    x = _residual(x, y, drop_path_rate, f"{name}_1")
    y = mbb2(norm_layer(norm, f"{name}_norm2")(x), mlp_ratio=mlp_ratio, precision=precision,
             name=f"{name}_mbb2")
    return _residual(x, y, drop_path_rate, f"{name}_2")


def _residual(x: tf.Tensor, branch: tf.Tensor, drop_path_rate: float, name: str) -> tf.Tensor:
    if drop_path_rate > 0:
        branch = DropPath(drop_path_rate, name=f"{name}_drop_path")(branch)
    return tf.keras.layers.Add(name=f"{name}_add")([x, branch])


def downsample(x: tf.Tensor, filters: int, *, norm: str = "batch", name: str) -> tf.Tensor:
    """BiMLP's downsampling: float 1×1 conv (bias) → norm → RPReLU → mean of 4 max-pools.

    The max-pools have sizes 2, 3, 5 and 7, stride 2 and "same" padding.

    Args:
        x: input ``(batch, H, W, C)``.
        filters: output channels.
        norm: ``"batch"`` or ``"group"``.
        name: prefix of the layer names.

    Returns:
        Output ``(batch, ceil(H/2), ceil(W/2), filters)``.
    """
    y = tf.keras.layers.Conv2D(filters, 1, use_bias=True, name=f"{name}_conv")(x)
    y = norm_layer(norm, f"{name}_norm")(y)
    y = RPReLU(name=f"{name}_rprelu")(y)
    pools = [tf.keras.layers.MaxPooling2D(size, strides=2, padding="same",
                                          name=f"{name}_maxpool{size}")(y)
             for size in _DOWNSAMPLE_POOLS]
    return tf.keras.layers.Average(name=f"{name}_mean")(pools)

"""Functional ReActNet building blocks on ``larq.layers.QuantConv2D``.

Each function takes a Keras tensor and returns the block's output tensor, so models built from
them are plain functional ``tf.keras.Model`` graphs that ``larq.models.summary``, ``.keras``
serialization and the LCE converter all understand.
"""

from tflbnn import _backend  # noqa: F401

import contextlib
import logging
from typing import Sequence

import larq as lq
import tensorflow as tf

from tflbnn.layers import LearnableBias, RPReLU, RSign

__all__ = ["quiet_weight_clip_warning", "reactnet_block", "react_bireal_block", "binary_conv",
           "block_diagonal_mask", "BlockDiagonalQuantConv2D", "GroupSuperConv2D", "batch_norm",
           "sign_or_shift", "PRECISIONS", "check_precision"]

# PyTorch BatchNorm2d defaults (momentum 0.1, eps 1e-5) expressed in Keras terms.
_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5


def batch_norm(name: str) -> tf.keras.layers.BatchNormalization:
    """BatchNormalization with the PyTorch defaults the papers trained with."""
    return tf.keras.layers.BatchNormalization(
        momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=name
    )


class _DropStarvedWeightsWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "starved weights" not in record.getMessage()


@contextlib.contextmanager
def quiet_weight_clip_warning():
    """Silence larq's "binary weight quantizer without kernel_constraint" warning inside."""
    # ReActNet deliberately trains binary kernels without a weight_clip constraint (weights past
    # |1| stop learning, the "dead weights" AdamBNN studies), so larq's warning about it is noise.
    larq_logger = logging.getLogger("larq.layers_base")
    warning_filter = _DropStarvedWeightsWarning()
    larq_logger.addFilter(warning_filter)
    try:
        yield
    finally:
        larq_logger.removeFilter(warning_filter)


def binary_conv(
    filters: int,
    kernel_size: int,
    *,
    strides: int = 1,
    binary_weights: bool = True,
    pad_values: float = 1.0,
    groups: int = 1,
    name: str,
) -> lq.layers.QuantConv2D:
    """A ``QuantConv2D`` meant to receive ±1 inputs from an ``RSign`` layer.

    Args:
        filters: output channels.
        kernel_size: square kernel size.
        strides: convolution stride.
        binary_weights: binarise the kernel with ``reactnet_weight_sign`` (step 2); ``False``
            keeps real-valued weights (step 1 of the two-step recipe).
        pad_values: value used for "same" padding of the ±1 input. ``1.0`` ("same-one")
            converts to ``LceBconv2d`` on every LCE target and allows op fusion; ``0.0``
            matches the PyTorch reference but LCE only supports it on ARM without fusions.
        groups: grouped convolution with this many groups (kernel ``(k, k, C_in / groups,
            filters)``); the binary scale is then taken over each filter's own group. LCE
            converts it when ``C_in / groups`` is a multiple of 32, and only its indirect-BGEMM
            and reference kernels run it (lce.md §2.2).
        name: layer name.

    Returns:
        The (unbuilt) layer: a ``QuantConv2D``, or for ``groups > 1`` a
        ``BlockDiagonalQuantConv2D`` (the same layer, trained as a dense convolution).

    Raises:
        ValueError: if ``groups`` is not a positive divisor of ``filters``.
    """
    if groups < 1 or filters % groups:
        raise ValueError(f"{name}: groups must be a positive divisor of the {filters} filters, "
                         f"got {groups}")
    layer_class = lq.layers.QuantConv2D if groups == 1 else BlockDiagonalQuantConv2D
    with quiet_weight_clip_warning():
        return layer_class(
            filters,
            kernel_size,
            strides=strides,
            padding="same",
            pad_values=pad_values,
            groups=groups,
            use_bias=False,
            input_quantizer=None,
            kernel_quantizer="reactnet_weight_sign" if binary_weights else None,
            name=name,
        )


def block_diagonal_mask(in_channels: int, filters: int, groups: int | tf.Tensor,
                        dtype: tf.DType = tf.float32) -> tf.Tensor:
    """The ``(in_channels, filters)`` 0/1 mask of a grouped convolution's connections.

    Input channel ``i`` and filter ``j`` are connected when ``i // (in_channels / groups) ==
    j // (filters / groups)``: the grouped convolution is the dense one with its kernel
    multiplied by this mask.

    Args:
        in_channels: input channels of the convolution.
        filters: output channels.
        groups: number of groups, an int or a scalar int32 tensor; must divide both counts.
        dtype: dtype of the mask, that of the kernel it multiplies.

    Returns:
        The ``(in_channels, filters)`` mask.
    """
    in_group = tf.range(in_channels) // (in_channels // groups)
    out_group = tf.range(filters) // (filters // groups)
    return tf.cast(tf.equal(in_group[:, None], out_group[None, :]), dtype)


@lq.utils.register_keras_custom_object
class BlockDiagonalQuantConv2D(lq.layers.QuantConv2D):
    """A grouped ``QuantConv2D`` that trains as a dense convolution with a block-diagonal kernel.

    Same constructor, kernel variable ``(kh, kw, C_in / groups, filters)``, quantizers, outputs
    and gradients as ``larq.layers.QuantConv2D(groups=groups)``. With ``training=True`` the
    (quantized) grouped kernel is tiled to ``(kh, kw, C_in, filters)`` and multiplied by
    ``block_diagonal_mask``; otherwise the grouped convolution itself runs, so inference,
    ``.keras`` files and the LCE converter see a grouped ``Conv2D`` (``LceBconv2d`` with
    groups).

    Why: TensorFlow's CPU grouped convolution is many times slower than the dense one although
    it does fewer MACs (``benchmarks/grouped_conv_speed.py`` measures both forms), so binary
    MobileNets with searched groups trained far slower per epoch than ungrouped ReActNet-A. The
    dense form does ``groups`` times the grouped MACs but runs in the fast dense kernel.
    """

    def call(self, inputs, training=None):
        if training is not True or self.groups == 1:
            return super().call(inputs)
        # Keras runs a grouped convolution_op inside an XLA-compiled tf.function whose trace is
        # keyed on the tensors only, not on ``training``; with ``groups`` set to 1 for this call
        # it calls convolution_op directly, which then builds the dense kernel.
        self._dense_training_groups, self.groups = self.groups, 1
        try:
            return super().call(inputs)
        finally:
            self.groups, self._dense_training_groups = self._dense_training_groups, None

    def convolution_op(self, inputs, kernel):
        groups = getattr(self, "_dense_training_groups", None)
        if groups is None:
            return super().convolution_op(inputs, kernel)
        kernel = tf.convert_to_tensor(kernel)  # the quantized kernel inside larq's scope
        in_channels = int(kernel.shape[-2]) * groups
        dense_kernel = (tf.tile(kernel, (1, 1, groups, 1))
                        * block_diagonal_mask(in_channels, self.filters, groups, kernel.dtype))
        return super().convolution_op(inputs, dense_kernel)


@lq.utils.register_keras_custom_object
class GroupSuperConv2D(lq.layers.QuantConv2D):
    r"""Weight-sharing grouped convolution of a one-shot supernet (papers.md §6).

    The layer holds the full (``groups=1``) kernel ``(k, k, C_in, filters)`` and computes the
    grouped convolution of the currently selected group count ``g``: a grouped convolution is
    the full one with every kernel entry outside the block diagonal zeroed (input channel
    ``i`` and filter ``j`` are connected when ``i // (C_in / g) == j // (filters / g)``). With
    ``binary_weights`` the kernel is ReActNet's ``alpha · sign(W)`` (``ReActNetWeightSign``:
    straight-through estimator through ``clip(W, -1, 1)``) with ``alpha`` the mean ``|W|`` of
    each filter's *active* entries only, so the output equals that of the real grouped
    ``QuantConv2D(groups=g, kernel_quantizer="reactnet_weight_sign")`` whose kernel holds
    those entries (``tflbnn.group_search.grouped_kernel``).

    The selected choice is an index into ``group_choices`` stored in the non-trainable int32
    weight ``choice``: assigning it (``set_groups``) between training steps switches the
    sub-network without retracing the compiled step.

    The layer is a training-time device: it declares no kernel quantizer, so profiling counts
    it as a float convolution and the LCE converter leaves it alone. Deploy a sub-network
    (``tflbnn.group_search.extract_subnet``) instead.

    Args:
        filters: output channels.
        kernel_size: kernel size.
        group_choices: the group counts the layer can take; each must divide the input
            channels and ``filters``.
        groups: the initially selected group count, one of ``group_choices``.
        binary_weights: binarise the active kernel entries (step 2); ``False`` keeps them real.
        clip_value: weights with ``|W| > clip_value`` get zero gradient (binary weights only).
        **kwargs: ``QuantConv2D`` arguments (``strides``, ``padding``, ``pad_values``, ...);
            ``groups`` and the quantizers are fixed by the layer.

    Raises:
        ValueError: for empty or non-positive ``group_choices``, ``groups`` not among them, or
            (when built) a choice that does not divide the channels.
    """

    def __init__(self, filters: int, kernel_size, *, group_choices: Sequence[int] = (1,),
                 groups: int = 1, binary_weights: bool = True, clip_value: float = 1.0,
                 **kwargs):
        for fixed in ("input_quantizer", "kernel_quantizer"):
            if kwargs.pop(fixed, None) is not None:
                raise ValueError(f"GroupSuperConv2D: {fixed} is fixed by the layer (binary "
                                 "weights are chosen with binary_weights)")
        super().__init__(filters, kernel_size, **kwargs)
        choices = tuple(int(g) for g in group_choices)
        if not choices or min(choices) < 1 or len(set(choices)) != len(choices):
            raise ValueError(f"{self.name}: group_choices must be distinct positive integers, "
                             f"got {tuple(group_choices)}")
        if int(groups) not in choices:
            raise ValueError(f"{self.name}: groups={groups} is not one of the group_choices "
                             f"{choices}")
        self.group_choices = choices
        self.initial_groups = int(groups)
        self.binary_weights = bool(binary_weights)
        self.clip_value = float(clip_value)

    def build(self, input_shape):
        in_channels = int(tf.TensorShape(input_shape)[-1])
        for g in self.group_choices:
            if in_channels % g or self.filters % g:
                raise ValueError(f"{self.name}: group choice {g} does not divide the "
                                 f"{in_channels} input channels and {self.filters} filters")
        super().build(input_shape)
        self.choice = self.add_weight(
            name="choice", shape=(), dtype=tf.int32, trainable=False,
            initializer=tf.keras.initializers.Constant(
                self.group_choices.index(self.initial_groups)),
        )

    @property
    def groups_active(self) -> int:
        """The currently selected group count."""
        return self.group_choices[int(self.choice.numpy())]

    def set_groups(self, groups: int) -> None:
        """Select the group count ``groups`` (one of ``group_choices``).

        Raises:
            ValueError: if ``groups`` is not a choice of this layer.
        """
        if int(groups) not in self.group_choices:
            raise ValueError(f"{self.name}: groups={groups} is not one of the group_choices "
                             f"{self.group_choices}")
        self.choice.assign(self.group_choices.index(int(groups)))

    def group_mask(self) -> tf.Tensor:
        """The ``(C_in, filters)`` 0/1 block-diagonal mask of the selected group count."""
        groups = tf.gather(tf.constant(self.group_choices, tf.int32), self.choice)
        return block_diagonal_mask(int(self.kernel.shape[-2]), self.filters, groups,
                                   self.kernel.dtype)

    def active_kernel(self) -> tf.Tensor:
        """The kernel the convolution applies: masked and, with binary weights, binarised."""
        kernel = tf.convert_to_tensor(self.kernel)
        mask = self.group_mask()
        if self.binary_weights:
            spatial = int(kernel.shape[0]) * int(kernel.shape[1])
            active = spatial * tf.reduce_sum(mask, axis=0)
            alpha = tf.stop_gradient(
                tf.reduce_sum(tf.abs(kernel) * mask, axis=(0, 1, 2)) / active)
            clipped = tf.clip_by_value(kernel, -self.clip_value, self.clip_value)
            # As ReActNetWeightSign: the value of alpha·sign(W), the gradient of clip(W).
            kernel = clipped + tf.stop_gradient(alpha * lq.math.sign(kernel) - clipped)
        return kernel * mask

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, self.active_kernel())

    def get_config(self):
        config = super().get_config()
        for fixed in ("input_quantizer", "kernel_quantizer", "groups"):
            config.pop(fixed, None)
        return {**config, "group_choices": list(self.group_choices),
                "groups": self.initial_groups, "binary_weights": self.binary_weights,
                "clip_value": self.clip_value}


#: Precisions of a ReActNet model, one per stage of the two-step recipe:
#: ``"float"`` the real-valued twin (teacher), ``"binary_activations"`` step 1 (RSign inputs,
#: real weights), ``"binary"`` step 2 (binary inputs and weights). All share one weight layout.
PRECISIONS = ("float", "binary_activations", "binary")


def check_precision(precision: str, owner: str) -> None:
    """Raise ``ValueError`` naming ``owner`` unless ``precision`` is one of ``PRECISIONS``."""
    if precision not in PRECISIONS:
        raise ValueError(f"{owner}: precision must be one of {PRECISIONS}, got {precision!r}")


def sign_or_shift(precision: str, name: str) -> tf.keras.layers.Layer:
    """``RSign`` for binary activations, else the same learnable shift without the sign.

    The float twin keeps the shift so that all precisions of a model share one weight layout.
    """
    return LearnableBias(name=name) if precision == "float" else RSign(name=name)


def _check_channels(in_channels: int, out_channels: int, allowed: tuple, block_name: str) -> None:
    if out_channels not in allowed:
        raise ValueError(
            f"{block_name}: out_channels must be one of {sorted(set(allowed))} for an input with "
            f"{in_channels} channels, got {out_channels}"
        )


def reactnet_block(
    x: tf.Tensor,
    out_channels: int,
    *,
    stride: int = 1,
    precision: str = "binary",
    pad_values: float = 1.0,
    groups: int = 1,
    group_choices: Sequence[int] | None = None,
    name: str,
) -> tf.Tensor:
    """The ReActNet-A basic block (papers.md §1.1), normal or reduction form.

    ``RSign → binary 3×3 (C→C, stride) → BN → + shortcut → RPReLU`` then
    ``RSign → binary 1×1 → BN → + identity → RPReLU``. The shortcut of the 3×3 part is the input,
    or a 2×2 average pool when strided. In the reduction form (``out_channels == 2·C``) the 1×1
    conv is duplicated, each copy adds the same activation as its shortcut, and the two halves
    are concatenated.

    Args:
        x: input tensor of shape ``(batch, H, W, C)``.
        out_channels: ``C`` (normal block) or ``2·C`` (reduction block).
        stride: 1 or 2.
        precision: one of ``PRECISIONS``. The float twin has a learnable shift instead of the
            sign, zero padding and real-valued kernels.
        pad_values: padding value of the binary 3×3 conv, see ``binary_conv``.
        groups: groups of the 3×3 conv (1 = ReActNet-A's full conv); must divide ``C``. With
            ``group_choices`` it is the initially selected choice.
        group_choices: when given, the 3×3 conv is a ``GroupSuperConv2D`` over these group
            counts: the weight-sharing layer of a one-shot supernet.
        name: prefix for the layer names.

    Returns:
        Output tensor with ``out_channels`` channels.

    Raises:
        ValueError: for an unsupported channel ratio, stride or group count.
    """
    in_channels = int(x.shape[-1])
    _check_channels(in_channels, out_channels, (in_channels, 2 * in_channels), name)
    if stride not in (1, 2):
        raise ValueError(f"{name}: stride must be 1 or 2, got {stride}")
    for choice in (groups, *(group_choices or ())):
        if int(choice) < 1 or in_channels % int(choice):
            raise ValueError(f"{name}: the 3x3 conv's groups must divide its {in_channels} input "
                             f"channels, got {choice}")

    check_precision(precision, name)
    binary_weights = precision == "binary"
    if precision == "float":
        pad_values = 0.0
    y = sign_or_shift(precision, f"{name}_rsign_3x3")(x)
    if group_choices is None:
        conv_3x3 = binary_conv(
            in_channels, 3, strides=stride, binary_weights=binary_weights,
            pad_values=pad_values, groups=groups, name=f"{name}_bconv_3x3",
        )
    else:
        conv_3x3 = GroupSuperConv2D(
            in_channels, 3, strides=stride, padding="same", pad_values=pad_values,
            use_bias=False, group_choices=group_choices, groups=groups,
            binary_weights=binary_weights, name=f"{name}_bconv_3x3",
        )
    y = conv_3x3(y)
    y = batch_norm(f"{name}_bn_3x3")(y)
    shortcut = x
    if stride == 2:
        shortcut = tf.keras.layers.AveragePooling2D(
            2, strides=2, padding="same", name=f"{name}_pool"
        )(x)
    y = tf.keras.layers.Add(name=f"{name}_add_3x3")([shortcut, y])
    y = RPReLU(name=f"{name}_rprelu_3x3")(y)

    z = sign_or_shift(precision, f"{name}_rsign_1x1")(y)
    copies = out_channels // in_channels
    branches = []
    for copy in range(copies):
        suffix = "" if copies == 1 else f"_{copy + 1}"
        branch = binary_conv(
            in_channels, 1, binary_weights=binary_weights, pad_values=pad_values,
            name=f"{name}_bconv_1x1{suffix}",
        )(z)
        branch = batch_norm(f"{name}_bn_1x1{suffix}")(branch)
        branches.append(tf.keras.layers.Add(name=f"{name}_add_1x1{suffix}")([y, branch]))
    out = branches[0]
    if copies > 1:
        out = tf.keras.layers.Concatenate(name=f"{name}_concat")(branches)
    return RPReLU(name=f"{name}_rprelu_1x1")(out)


def react_bireal_block(
    x: tf.Tensor,
    out_channels: int,
    *,
    stride: int = 1,
    precision: str = "binary",
    pad_values: float = 1.0,
    name: str,
) -> tf.Tensor:
    """The single-conv block of ReAct-BiReal-18 (papers.md §1.6).

    ``RSign → binary 3×3 (stride) → BN → + shortcut → RPReLU``. When the shape changes the
    shortcut is ``AvgPool 2×2 (stride) → real 1×1 conv → BN``.

    Args:
        x: input tensor of shape ``(batch, H, W, C)``.
        out_channels: output channels.
        stride: 1 or 2.
        precision: one of ``PRECISIONS``. The float twin has a learnable shift instead of the
            sign, zero padding and real-valued kernels.
        pad_values: padding value of the binary 3×3 conv, see ``binary_conv``.
        name: prefix for the layer names.

    Returns:
        Output tensor with ``out_channels`` channels.

    Raises:
        ValueError: for an unsupported stride.
    """
    in_channels = int(x.shape[-1])
    if stride not in (1, 2):
        raise ValueError(f"{name}: stride must be 1 or 2, got {stride}")

    check_precision(precision, name)
    binary_weights = precision == "binary"
    if precision == "float":
        pad_values = 0.0
    y = sign_or_shift(precision, f"{name}_rsign")(x)
    y = binary_conv(
        out_channels, 3, strides=stride, binary_weights=binary_weights,
        pad_values=pad_values, name=f"{name}_bconv_3x3",
    )(y)
    y = batch_norm(f"{name}_bn")(y)
    shortcut = x
    if stride == 2:
        shortcut = tf.keras.layers.AveragePooling2D(
            2, strides=2, padding="same", name=f"{name}_pool"
        )(shortcut)
    if in_channels != out_channels:
        shortcut = tf.keras.layers.Conv2D(
            out_channels, 1, use_bias=False, name=f"{name}_downsample_conv"
        )(shortcut)
        shortcut = batch_norm(f"{name}_downsample_bn")(shortcut)
    y = tf.keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return RPReLU(name=f"{name}_rprelu")(y)


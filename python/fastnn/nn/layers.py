"""More torch.nn layers over fastnn.nn.functional: channel dropout (Dropout1d/2d/3d,
AlphaDropout), Unflatten, Upsample (nearest, linear, area), the padding layers, the one-dimensional
convolution and pooling layers (the 2-D kernels on a unit height), the transposed convolutions
ConvTranspose1d/2d, CosineSimilarity,
PairwiseDistance, Bilinear, GroupNorm and InstanceNorm1d/2d/3d; torch's constructors,
parameter names, initialisations and reprs."""

import math
import warnings

import numpy as np

from . import functional as F
from . import init
from .modules import Module, Parameter, _ConvNd, _factory_dtype, _norm_state, _ntuple

__all__ = [
    "Dropout1d",
    "Dropout2d",
    "Dropout3d",
    "AlphaDropout",
    "Unflatten",
    "Upsample",
    "UpsamplingNearest2d",
    "UpsamplingBilinear2d",
    "ConstantPad1d",
    "ConstantPad2d",
    "ConstantPad3d",
    "ZeroPad1d",
    "ZeroPad2d",
    "ZeroPad3d",
    "ReflectionPad1d",
    "ReflectionPad2d",
    "ReflectionPad3d",
    "ReplicationPad1d",
    "ReplicationPad2d",
    "ReplicationPad3d",
    "CircularPad1d",
    "CircularPad2d",
    "CircularPad3d",
    "Conv1d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "MaxPool1d",
    "AvgPool1d",
    "AdaptiveAvgPool1d",
    "CosineSimilarity",
    "PairwiseDistance",
    "Bilinear",
    "PixelShuffle",
    "PixelUnshuffle",
    "GroupNorm",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "InstanceNorm3d",
]


# -- dropout ----------------------------------------------------------------------------------


class _DropoutNd(Module):
    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout1d(_DropoutNd):
    def forward(self, input):
        return F.dropout1d(input, self.p, self.training)


class Dropout2d(_DropoutNd):
    def forward(self, input):
        return F.dropout2d(input, self.p, self.training)


class Dropout3d(_DropoutNd):
    def forward(self, input):
        return F.dropout3d(input, self.p, self.training)


class AlphaDropout(_DropoutNd):
    def forward(self, input):
        return F.alpha_dropout(input, self.p, self.training)


# -- shape ------------------------------------------------------------------------------------


class Unflatten(Module):
    """Dim `dim` of the input reshaped to unflattened_size (one entry may be -1)."""

    def __init__(self, dim, unflattened_size):
        super().__init__()
        if isinstance(dim, str):
            raise NotImplementedError(
                "fastnn.nn.Unflatten: a named dim (torch's named tensors) is not supported; give the dim's index"
            )
        if not isinstance(unflattened_size, (tuple, list)):
            raise TypeError(
                f"unflattened_size must be a tuple of ints, but found type {type(unflattened_size).__name__}"
            )
        for i, n in enumerate(unflattened_size):
            if not isinstance(n, int):
                raise TypeError(
                    f"unflattened_size must be tuple of ints, but found element of type {type(n).__name__} at pos {i}"
                )
        self.dim, self.unflattened_size = dim, unflattened_size

    def forward(self, input):
        shape = tuple(input.shape)
        d = self.dim % len(shape)
        sizes = list(self.unflattened_size)
        known = math.prod(n for n in sizes if n != -1)
        if sizes.count(-1) == 1 and known and shape[d] % known == 0:
            sizes[sizes.index(-1)] = shape[d] // known
        if sizes.count(-1) or math.prod(sizes) != shape[d]:
            raise RuntimeError(
                f"unflatten: Provided sizes {list(self.unflattened_size)} don't multiply up to the size of dim "
                f"{self.dim} ({shape[d]}) in the input tensor"
            )
        return input.reshape(shape[:d] + tuple(sizes) + shape[d + 1 :])

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Upsample(Module):
    """F.interpolate as a layer: modes "nearest", "nearest-exact", "linear", "bilinear",
    "trilinear" and "area" as F.interpolate has them ("bicubic" and "lanczos" raise on forward)."""

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None):
        super().__init__()
        self.name = type(self).__name__
        self.size = size
        if isinstance(scale_factor, tuple):
            self.scale_factor = tuple(float(f) for f in scale_factor)
        else:
            self.scale_factor = float(scale_factor) if scale_factor else None
        self.mode, self.align_corners, self.recompute_scale_factor = mode, align_corners, recompute_scale_factor

    def forward(self, input):
        return F.interpolate(
            input,
            self.size,
            self.scale_factor,
            self.mode,
            self.align_corners,
            recompute_scale_factor=self.recompute_scale_factor,
        )

    def extra_repr(self):
        s = f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None else f"size={self.size!r}"
        return s + f", mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """Upsample with mode "bilinear" and align_corners=True, as torch's."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)


# -- padding ----------------------------------------------------------------------------------


class _PadNd(Module):
    _dims = 1
    _mode = "constant"

    def __init__(self, padding):
        super().__init__()
        self.padding = (padding,) * (2 * self._dims) if isinstance(padding, int) else tuple(padding)

    def forward(self, input):
        if self._mode == "constant":
            return F.pad(input, self.padding, "constant", self.value)
        return F.pad(input, self.padding, self._mode)

    def extra_repr(self):
        return f"{self.padding}"


class _ConstantPadNd(_PadNd):
    def __init__(self, padding, value):
        super().__init__(padding)
        self.value = value

    def extra_repr(self):
        return f"padding={self.padding}, value={self.value}"


def _pad_class(name, dims, base, mode=None, value=None):
    attrs = {"_dims": dims, "__module__": __name__, "__qualname__": name}
    if mode is not None:
        attrs["_mode"] = mode
    if value is not None:  # the ZeroPad layers: ConstantPad with value 0, printed as padding only

        def __init__(self, padding):
            _ConstantPadNd.__init__(self, padding, value)

        attrs.update(__init__=__init__, extra_repr=_PadNd.extra_repr)
    return type(name, (base,), attrs)


ConstantPad1d = _pad_class("ConstantPad1d", 1, _ConstantPadNd)
ConstantPad2d = _pad_class("ConstantPad2d", 2, _ConstantPadNd)
ConstantPad3d = _pad_class("ConstantPad3d", 3, _ConstantPadNd)
ZeroPad1d = _pad_class("ZeroPad1d", 1, ConstantPad1d, value=0.0)
ZeroPad2d = _pad_class("ZeroPad2d", 2, ConstantPad2d, value=0.0)
ZeroPad3d = _pad_class("ZeroPad3d", 3, ConstantPad3d, value=0.0)
ReflectionPad1d = _pad_class("ReflectionPad1d", 1, _PadNd, "reflect")
ReflectionPad2d = _pad_class("ReflectionPad2d", 2, _PadNd, "reflect")
ReflectionPad3d = _pad_class("ReflectionPad3d", 3, _PadNd, "reflect")
ReplicationPad1d = _pad_class("ReplicationPad1d", 1, _PadNd, "replicate")
ReplicationPad2d = _pad_class("ReplicationPad2d", 2, _PadNd, "replicate")
ReplicationPad3d = _pad_class("ReplicationPad3d", 3, _PadNd, "replicate")
CircularPad1d = _pad_class("CircularPad1d", 1, _PadNd, "circular")
CircularPad2d = _pad_class("CircularPad2d", 2, _PadNd, "circular")
CircularPad3d = _pad_class("CircularPad3d", 3, _PadNd, "circular")


# -- one-dimensional convolution and pooling ---------------------------------------------------


class Conv1d(_ConvNd):
    """torch.nn.Conv1d: weight (out_channels, in_channels / groups, kernel_size), input (N, C, L)
    or unbatched (C, L); the 2-D kernel runs on a unit height."""

    _dims = 1

    def _conv(self, x, padding):
        pad = padding if isinstance(padding, str) else padding[0]
        return F.conv1d(x, self.weight, self.bias, self.stride[0], pad, self.dilation[0], self.groups)


class _ConvTransposeNd(_ConvNd):
    """torch's ConvTranspose1d/2d: weight (in_channels, out_channels / groups, *kernel_size),
    initialised as torch's (kaiming_uniform_ with a = sqrt(5) over weight.size(1) * the kernel);
    forward(input, output_size=None): output_size picks the output_padding, as torch's."""

    _transposed = True

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        output_padding=0,
        groups=1,
        bias=True,
        dilation=1,
        padding_mode="zeros",
        device=None,
        dtype=None,
    ):
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {type(self).__name__}')
        if isinstance(padding, str):
            raise ValueError(f"{type(self).__name__}: padding must be an int or a tuple of ints, got {padding!r}")
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, "zeros", device, dtype
        )
        self.output_padding = _ntuple(output_padding, self._dims)

    def _output_padding(self, input, output_size):
        if output_size is None:
            return self.output_padding
        n = self._dims
        spatial = input.shape[-n:]
        output_size = tuple(int(v) for v in output_size)
        if len(output_size) == n + (2 if input.dim() == n + 2 else 1):
            output_size = output_size[-n:]
        if len(output_size) != n:
            raise ValueError(
                f"ConvTranspose{n}D: for {input.dim()}D input, output_size must have {n} or "
                f"{n + 2 if input.dim() == n + 2 else n + 1} elements (got {len(output_size)})"
            )
        lo = [
            (spatial[d] - 1) * self.stride[d] - 2 * self.padding[d] + self.dilation[d] * (self.kernel_size[d] - 1) + 1
            for d in range(n)
        ]
        hi = [lo[d] + self.stride[d] - 1 for d in range(n)]
        for d in range(n):
            if not lo[d] <= output_size[d] <= hi[d]:
                raise ValueError(
                    f"requested an output size of {list(output_size)}, but valid sizes range from {lo} to {hi} "
                    f"(for an input of {list(spatial)})"
                )
        return tuple(output_size[d] - lo[d] for d in range(n))


class ConvTranspose2d(_ConvTransposeNd):
    """torch.nn.ConvTranspose2d (fastnn.nn.functional.conv_transpose2d)."""

    _dims = 2

    def forward(self, input, output_size=None):
        op = self._output_padding(F._t(input), output_size)
        return F.conv_transpose2d(
            input, self.weight, self.bias, self.stride, self.padding, op, self.groups, self.dilation
        )


class ConvTranspose1d(_ConvTransposeNd):
    """torch.nn.ConvTranspose1d: ConvTranspose2d's kernels on a unit height."""

    _dims = 1

    def forward(self, input, output_size=None):
        op = self._output_padding(F._t(input), output_size)
        return F.conv_transpose1d(
            input, self.weight, self.bias, self.stride[0], self.padding[0], op[0], self.groups, self.dilation[0]
        )


class MaxPool1d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation, self.return_indices, self.ceil_mode = padding, dilation, return_indices, ceil_mode

    def forward(self, input):
        return F.max_pool1d(
            input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode, self.return_indices
        )

    def extra_repr(self):
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class AvgPool1d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__()
        self.kernel_size = _ntuple1(kernel_size)
        self.stride = _ntuple1(stride if stride is not None else kernel_size)
        self.padding = _ntuple1(padding)
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, input):
        return F.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


def _ntuple1(v):
    return (v,) if isinstance(v, int) else tuple(v)


class AdaptiveAvgPool1d(Module):
    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        return F.adaptive_avg_pool1d(input, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


# -- similarity and distance ----------------------------------------------------------------------


class CosineSimilarity(Module):
    def __init__(self, dim=1, eps=1e-8):
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x1, x2):
        return F.cosine_similarity(x1, x2, self.dim, self.eps)


class PairwiseDistance(Module):
    def __init__(self, p=2.0, eps=1e-6, keepdim=False):
        super().__init__()
        self.norm, self.eps, self.keepdim = p, eps, keepdim

    def forward(self, x1, x2):
        return F.pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim)


class PixelShuffle(Module):
    def __init__(self, upscale_factor):
        super().__init__()
        self.upscale_factor = upscale_factor

    def forward(self, input):
        return F.pixel_shuffle(input, self.upscale_factor)

    def extra_repr(self):
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Module):
    def __init__(self, downscale_factor):
        super().__init__()
        self.downscale_factor = downscale_factor

    def forward(self, input):
        return F.pixel_unshuffle(input, self.downscale_factor)

    def extra_repr(self):
        return f"downscale_factor={self.downscale_factor}"


class Bilinear(Module):
    """y = x1^T A x2 + b: weight (out_features, in1_features, in2_features), bias (out_features,),
    both U(-1/sqrt(in1_features), 1/sqrt(in1_features)) as torch initialises them."""

    def __init__(self, in1_features, in2_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        self.in1_features, self.in2_features, self.out_features = in1_features, in2_features, out_features
        dt = _factory_dtype(dtype)
        self.weight = Parameter(np.empty((out_features, in1_features, in2_features), dt))
        self.bias = Parameter(np.empty(out_features, dt)) if bias else None
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self):
        bound = 1 / math.sqrt(self.weight.shape[1])
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1, input2):
        return F.bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self):
        return (
            f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
            f"out_features={self.out_features}, bias={self.bias is not None}"
        )


# -- normalisation ----------------------------------------------------------------------------


class GroupNorm(Module):
    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=None, *, bias=True):
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        dt = _factory_dtype(dtype)
        self.weight = Parameter(np.ones(num_channels, dt)) if affine else None
        self.bias = Parameter(np.zeros(num_channels, dt)) if affine and bias else None
        if device is not None:
            self.to(device)

    def forward(self, input):
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (
            f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
            f"bias={self.bias is not None}"
        )


class _InstanceNorm(Module):
    _no_batch_dims = 3  # dims of an unbatched input

    def __init__(
        self,
        num_features,
        eps=1e-5,
        momentum=0.1,
        affine=False,
        track_running_stats=False,
        device=None,
        dtype=None,
        *,
        bias=True,
    ):
        super().__init__()
        _norm_state(self, num_features, eps, momentum, affine, track_running_stats, bias, device, dtype)

    def forward(self, input):
        nb = self._no_batch_dims
        if input.ndim not in (nb, nb + 1):
            raise ValueError(f"expected {nb}D or {nb + 1}D input (got {input.ndim}D input)")
        fdim = input.ndim - nb
        if input.shape[fdim] != self.num_features:
            if self.affine:
                raise ValueError(
                    f"expected input's size at dim={fdim} to match num_features ({self.num_features}), "
                    f"but got: {input.shape[fdim]}."
                )
            warnings.warn(
                f"input's size at dim={fdim} does not match num_features. You can silence this warning by not "
                "passing in num_features, which is not used because affine=False",
                stacklevel=2,
            )
        x = input.unsqueeze(0) if input.ndim == nb else input
        y = F.instance_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            self.training or not self.track_running_stats,
            0.0 if self.momentum is None else self.momentum,
            self.eps,
        )
        return y.squeeze(0) if input.ndim == nb else y

    def extra_repr(self):
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}"
        )


class InstanceNorm1d(_InstanceNorm):
    _no_batch_dims = 2


class InstanceNorm2d(_InstanceNorm):
    _no_batch_dims = 3


class InstanceNorm3d(_InstanceNorm):
    _no_batch_dims = 4

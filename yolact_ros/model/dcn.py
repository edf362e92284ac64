"""DCNv2 (modulated deformable convolution) without compiling anything.

Parameter names follow the DCNv2 package the original YOLACT++ used
(``weight``, ``bias``, ``conv_offset_mask.{weight,bias}``) so official
checkpoints load unchanged.  On CUDA (and whenever gradients are needed) the
convolution is ``torchvision.ops.deform_conv2d``.  For CPU inference a faster
formulation gathers the deformed samples with one ``grid_sample`` call and runs
a strided ordinary convolution over them (see :func:`deform_conv2d_cpu`); it
computes the same bilinear sampling (zero outside the image) and matches
``deform_conv2d`` within float32 rounding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d


class DCN(nn.Module):
    """Modulated deformable 3x3 (or kxk) convolution, DCNv2 layout.

    ``conv_offset_mask`` predicts ``3*k*k`` channels: the first ``2*k*k`` are
    offsets interleaved (dy, dx) per kernel tap (tap = i*k + j), the last
    ``k*k`` go through a sigmoid to give the modulation mask.
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=1, dilation=1, deformable_groups=1):
        super().__init__()
        if deformable_groups != 1:
            raise ValueError("only deformable_groups=1 is supported (all official configs use 1)")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels))
        # DCNv2 builds the offset branch without dilation.
        self.conv_offset_mask = nn.Conv2d(
            in_channels, 3 * kernel_size * kernel_size, kernel_size, stride=stride, padding=padding, bias=True
        )
        self.reset_parameters()
        #: use the grid_sample + GEMM formulation on CPU when no gradient is needed
        self.fast_cpu = True

    def reset_parameters(self):
        n = self.in_channels * self.kernel_size**2
        stdv = 1.0 / math.sqrt(n)
        nn.init.uniform_(self.weight, -stdv, stdv)
        nn.init.zeros_(self.bias)
        # Start as a plain convolution: zero offsets, mask 0.5.
        nn.init.zeros_(self.conv_offset_mask.weight)
        nn.init.zeros_(self.conv_offset_mask.bias)

    def offsets_and_mask(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.conv_offset_mask(x)
        kk = self.kernel_size**2
        return out[:, : 2 * kk], torch.sigmoid(out[:, 2 * kk :])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset, mask = self.offsets_and_mask(x)
        use_fast = (
            self.fast_cpu and x.device.type == "cpu" and not (torch.is_grad_enabled() and self.weight.requires_grad)
        )
        if use_fast:
            return deform_conv2d_cpu(x, offset, self.weight, self.bias, self.stride, self.padding, self.dilation, mask)
        kind = x.device.type
        if torch.amp.is_autocast_available(kind) and torch.is_autocast_enabled(kind):
            # under autocast: float32 (the weights' dtype), result in the input's dtype, the rule
            # torchvision's autocast applies on CUDA; stated here so every device and torchvision
            # version does the same
            with torch.autocast(kind, enabled=False):
                return self._torchvision(x.float(), offset.float(), mask.float()).to(x.dtype)
        return self._torchvision(x, offset, mask)

    def _torchvision(self, x, offset, mask):
        return deform_conv2d(
            x,
            offset,
            self.weight,
            self.bias,
            stride=(self.stride, self.stride),
            padding=(self.padding, self.padding),
            dilation=(self.dilation, self.dilation),
            mask=mask,
        )


def deform_conv2d_cpu(x, offset, weight, bias, stride, padding, dilation, mask):
    """``deform_conv2d`` (one offset group) as one ``grid_sample`` + one strided convolution.

    x [N,C,H,W]; offset [N,2*K,Ho,Wo] interleaved (dy, dx) per tap (tap = i*kw + j);
    mask [N,K,Ho,Wo]; weight [O,C,kh,kw]; returns [N,O,Ho,Wo].

    The deformed samples of output pixel (ho, wo), tap (i, j) are written to pixel
    (ho*kh + i, wo*kw + j) of a [N,C,Ho*kh,Wo*kw] image, so a plain kh x kw convolution
    with stride (kh, kw) over it equals the deformable convolution — and runs on the
    fast oneDNN kernels instead of a generic im2col + GEMM.
    """
    n, c, h, w = x.shape
    kh, kw = weight.shape[-2:]
    ho, wo = offset.shape[-2:]
    # sampling positions in at least float32 (half precision steps by 0.25-0.5 px at 256-1023 px)
    dtype, device = torch.promote_types(x.dtype, torch.float32), x.device
    ys = (torch.arange(ho, device=device, dtype=dtype) * stride - padding).view(1, ho, 1, 1, 1)
    xs = (torch.arange(wo, device=device, dtype=dtype) * stride - padding).view(1, 1, 1, wo, 1)
    ti = (torch.arange(kh, device=device, dtype=dtype) * dilation).view(1, 1, kh, 1, 1)
    tj = (torch.arange(kw, device=device, dtype=dtype) * dilation).view(1, 1, 1, 1, kw)
    off = offset.reshape(n, kh, kw, 2, ho, wo).to(dtype)
    # sampling positions in input pixels, laid out [N, Ho, kh, Wo, kw]
    py = ys + ti + off[:, :, :, 0].permute(0, 3, 1, 4, 2)
    px = xs + tj + off[:, :, :, 1].permute(0, 3, 1, 4, 2)
    # grid_sample with align_corners=True maps -1..1 to pixel centres 0..size-1 and reads zeros
    # outside the image: exactly DCNv2's bilinear rule.
    gx = px * (2.0 / max(w - 1, 1)) - 1.0
    gy = py * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack((gx, gy), dim=-1).reshape(n, ho * kh, wo * kw, 2).to(x.dtype)
    cols = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    m = mask.reshape(n, kh, kw, ho, wo).permute(0, 3, 1, 4, 2).reshape(n, 1, ho * kh, wo * kw)
    return F.conv2d(cols.mul_(m), weight, bias, stride=(kh, kw))  # in place: cols is ours, and a copy costs 2x

"""Rendering localizations into images: Gaussian KDE on CPU or GPU, masks, resizing, patches.

``render(locs, spec, device="auto") -> Rendered(image, origin_nm, pixel_nm, mask, ...)``.
"""

from ._channels import (
    describe_channels,
    file_channels,
    manifest_channel_maps,
    match_channels,
    parse_channel_map,
    parse_row_channels,
    row_channel_map,
    select_channels,
)
from ._export import IMAGE_FORMATS, to_rgb8, write_png, write_rendered
from ._files import output_stems, render_files
from ._model_input import ModelInput, model_input, model_input_from, patch_mode, render_spec_for
from ._patches import Patch, extract_patches, scale_channels
from ._render import (
    MAX_PIXELS,
    Rendered,
    channel_index,
    finish_render,
    kde_sigma,
    nucleus_mask,
    render,
    render_grid,
    scale_warnings,
    select_device,
)
from ._running import GROW_NM, AppendBuffer, RunningRender
from ._sklearn import render_sklearn
from ._spec import RenderSpec

__all__ = [
    "describe_channels",
    "file_channels",
    "manifest_channel_maps",
    "match_channels",
    "parse_channel_map",
    "parse_row_channels",
    "row_channel_map",
    "select_channels",
    "IMAGE_FORMATS",
    "scale_channels",
    "to_rgb8",
    "write_png",
    "write_rendered",
    "MAX_PIXELS",
    "ModelInput",
    "model_input",
    "model_input_from",
    "render_spec_for",
    "finish_render",
    "channel_index",
    "kde_sigma",
    "render_grid",
    "scale_warnings",
    "patch_mode",
    "Patch",
    "GROW_NM",
    "RenderSpec",
    "AppendBuffer",
    "RunningRender",
    "Rendered",
    "extract_patches",
    "nucleus_mask",
    "output_stems",
    "render",
    "render_files",
    "render_sklearn",
    "select_device",
]

"""PyTorch backend: the training checkpoint run eagerly (channels_last), or with torch.compile and
CUDA graphs on a GPU. The baseline of the benchmarks, and the fallback where ONNX Runtime is
missing. It runs the checkpoint (``RUN/best.pt``): an ONNX graph cannot be turned back into the
PyTorch model (batch norm is folded into the convolutions at export).

It lives on the training side (it needs the model registry and the checkpoint format) and is
registered with the engine's backend registry as ``torch`` and ``torch-compile`` through the
``ainu_engine.backends`` entry point group (pyproject.toml), so the engine never imports it
by name: :func:`ainu_engine.backends.create_backend` loads it when one of those is asked for."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ainu_engine.backends import Backend, BackendUnavailable, is_device_array
from ainu_engine.model import ModelInfo

from .checkpoint import checkpoint_info, load_checkpoint

__all__ = ["TorchBackend", "torch_backend", "torch_compile_backend"]


class TorchBackend(Backend):
    """Run a training checkpoint with PyTorch.

    Parameters
    ----------
    model_path : path
        ``RUN/best.pt``, or an ``.onnx`` with ``checkpoint`` naming the checkpoint it came from.
    checkpoint : path, optional
        The checkpoint, when ``model_path`` is the exported ``.onnx``.
    device : {"cpu", "cuda"}
    compile : bool, default False
        ``torch.compile`` (on CUDA with ``mode="reduce-overhead"``, i.e. CUDA graphs).
    fp16 : bool, default False
        float16 autocast on CUDA (reduced precision: same top-1, logits within ~1e-2).
    channels_last : bool, optional
        Default: on CUDA only (on the CPU it slows DenseNet-121 down: docs/gpu.md).
    threads : int, optional
        ``torch.set_num_threads`` on the CPU.
    batch_size, reason
        As for :class:`~ainu_engine.backends.Backend`.
    """

    name = "torch"

    def __init__(
        self,
        model_path,
        *,
        checkpoint: str | os.PathLike | None = None,
        device: str = "cpu",
        compile: bool = False,
        fp16: bool = False,
        channels_last: bool | None = None,
        threads: int | None = None,
        batch_size: int | None = None,
        reason: str = "",
    ) -> None:
        super().__init__(model_path, device=device, batch_size=batch_size, reason=reason)
        path = Path(model_path)
        self.checkpoint = (
            Path(checkpoint) if checkpoint is not None else (path if path.suffix == ".pt" else None)
        )
        self.compile = compile
        self.fp16 = fp16 and device == "cuda"
        # channels_last helps convolutions on CUDA, not on the CPU
        self.channels_last = (device == "cuda") if channels_last is None else channels_last
        self.threads = threads
        self.model = None
        self._run = None

    def _read_info(self) -> ModelInfo:
        if self.checkpoint is None:
            raise BackendUnavailable(
                "the torch backend runs the PyTorch checkpoint, and an .onnx file "
                "cannot be turned back into one",
                path=self.model_path,
                hint="pass the training checkpoint (RUN/best.pt) as the model, "
                "or use --backend onnxruntime",
            )
        return self._load_checkpoint()[1]

    def _load_checkpoint(self):
        self._require("torch", extra="train")
        model, ckpt = load_checkpoint(self.checkpoint)
        return model, checkpoint_info(ckpt, path=self.checkpoint)

    def _load_impl(self) -> None:
        import torch

        if self.device == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable(
                "torch sees no CUDA GPU", path=self.model_path, hint="use device cpu"
            )
        if self.threads and self.device == "cpu":
            torch.set_num_threads(self.threads)
        if self.device == "cuda":
            # fp32 means fp32: PyTorch lets cuDNN convolutions run in TF32 (10-bit mantissa) by
            # default on Ampere and later, ~1e-3 off on logits and far more on occlusion deltas.
            # These flags are process-wide; float16 autocast is the fast mode asked for explicitly.
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        model, info = self._load_checkpoint()
        self.info = info
        model = model.eval().to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        run = model
        if self.compile:
            run = torch.compile(
                model, mode="reduce-overhead" if self.device == "cuda" else "default", dynamic=False
            )
        self._run = run

    def _tensor(self, x):
        import torch

        if is_device_array(x):
            t = torch.as_tensor(x, device=self.device)
        else:
            t = torch.from_numpy(x).to(self.device, non_blocking=True)
        if self.channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        return t

    def _infer_impl(self, x) -> np.ndarray:
        import torch

        t = self._tensor(x)
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=self.fp16):
            out = self._run(t)
        return out.float().cpu().numpy()

    def _infer_embedding_impl(self, x):
        import torch

        t = self._tensor(x)
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=self.fp16):
            logits, emb = self.model.forward_with_embedding(t)
        return logits.float().cpu().numpy(), emb.float().cpu().numpy()

    def _describe_impl(self) -> dict:
        import torch

        return {
            "precision": "fp16 autocast"
            if self.fp16
            else ("fp32 (TF32 off)" if self.device == "cuda" else "fp32"),
            "compiled": self.compile,
            "channels_last": self.channels_last,
            "torch": torch.__version__,
            "checkpoint": None if self.checkpoint is None else str(self.checkpoint),
        }

    def _close_impl(self) -> None:
        self.model = self._run = None


def torch_backend(
    model,
    *,
    device: str = "cpu",
    checkpoint=None,
    threads: int | None = None,
    fp16: bool | None = None,
    batch_size: int | None = None,
    reason: str = "",
    compile: bool = False,
    **_options,
) -> TorchBackend:
    """The ``torch`` entry of the backend registry (eager PyTorch on the checkpoint; with
    ``compile=True``, torch.compile).

    Parameters
    ----------
    model : path
        The ``.pt`` checkpoint, or the ``.onnx`` beside ``checkpoint``.
    device : {"cpu", "cuda"}
        Where to run.
    checkpoint : path, optional
        The checkpoint when ``model`` is the ``.onnx``.
    threads : int, optional
        CPU threads.
    fp16 : bool, optional
        float16 autocast on CUDA.
    batch_size : int, optional
        The preferred batch.
    reason : str
        Why it was chosen.
    compile : bool
        torch.compile.
    **_options
        Other factories' options, ignored.

    Returns
    -------
    TorchBackend
    """
    return TorchBackend(
        model,
        checkpoint=checkpoint,
        device=device,
        compile=compile,
        fp16=bool(fp16),
        threads=threads,
        batch_size=batch_size,
        reason=reason,
    )


def torch_compile_backend(model, **options) -> TorchBackend:
    """The ``torch-compile`` entry of the backend registry (torch.compile; CUDA graphs on a GPU).

    Parameters
    ----------
    model : path
        As :func:`torch_backend`.
    **options
        :func:`torch_backend`'s.

    Returns
    -------
    TorchBackend
    """
    return torch_backend(model, **options, compile=True)

"""``ainu-engine serve --model M.onnx``: the engine as an HTTP service for acquisition software."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def serve(
    model: Annotated[Path, typer.Option("--model", "-m", help="Exported model (.onnx only).")],
    host: Annotated[
        str, typer.Option(help="Address to bind: loopback by default; any other needs a token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8750,
    token_file: Annotated[
        Path | None,
        typer.Option("--token-file", help="File holding the bearer token clients must send."),
    ] = None,
    max_batch: Annotated[
        int, typer.Option("--max-batch", min=1, help="Most model items inferred together.")
    ] = 16,
    max_delay_ms: Annotated[
        float,
        typer.Option("--max-delay-ms", min=0.0, help="Longest wait for a batch to fill (ms)."),
    ] = 5.0,
    queue_size: Annotated[
        int, typer.Option("--queue-size", min=1, help="Nuclei waiting for inference before 503.")
    ] = 64,
    max_body_mb: Annotated[
        float, typer.Option("--max-body-mb", min=0.001, help="Largest request body (413 above).")
    ] = 256.0,
    render_threads: Annotated[
        int, typer.Option("--render-threads", min=1, help="Threads reading and rendering.")
    ] = 2,
    live_sessions: Annotated[
        int, typer.Option("--live-sessions", min=1, help="Most live sessions open at once.")
    ] = 32,
    live_idle_s: Annotated[
        float, typer.Option("--live-idle-s", min=1.0, help="A live session idle this long closes.")
    ] = 600.0,
    backend: Annotated[str, typer.Option(help="Inference backend (see screen).")] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Serve a model over HTTP: POST /v1/classify (a localization file's bytes or JSON arrays),
    /v1/classify/batch, live sessions (/v1/live...), GET /v1/model, /healthz, /readyz, /metrics.
    Requests from concurrent clients are batched (--max-batch, --max-delay-ms); a full queue
    answers 503 with Retry-After. Binds to 127.0.0.1 unless told otherwise, and then only with
    --token-file. See docs/embedding.md.

    Example: ainu-engine serve --model model.onnx
    """
    import importlib.util

    from ..errors import AinuError

    missing = [m for m in ("starlette", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise AinuError(
            f"serve needs the serve extra; missing: {', '.join(missing)}",
            hint='pip install -c constraints.txt -e ".[cpu,serve]"',
        )
    from ..serve import LOOPBACK, ServeConfig
    from ..serve import serve as run

    token = None
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as err:
            raise AinuError(f"cannot read the token file: {err.strerror}", path=token_file) from err
        if len(token) < 16:
            raise AinuError("the token must be at least 16 characters", path=token_file)
    if host not in LOOPBACK and token is None:
        raise typer.BadParameter(
            f"{host} is not loopback: clients on the network must send a token",
            param_hint="--token-file",
        )
    cfg = ServeConfig(token=token, max_batch=max_batch, max_delay_ms=max_delay_ms,
                      queue_size=queue_size, max_body_mb=max_body_mb,
                      render_threads=render_threads, live_sessions=live_sessions,
                      live_idle_s=live_idle_s)  # fmt: skip
    typer.echo(f"serving {model} on http://{host}:{port} (Ctrl-C to stop)", err=True)
    run(model, host=host, port=port, config=cfg, backend=backend, device=device)

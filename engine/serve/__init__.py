"""The engine as a service for acquisition software: ``ainu-engine serve`` (an ASGI app on
Starlette and uvicorn; the ``serve`` extra), with dynamic batching, live sessions over HTTP,
health, metadata and Prometheus metrics (:func:`create_app`, :class:`ServeConfig`);
:mod:`ainu_engine.client` is its client."""

from ._app import ServeConfig, create_app
from ._batcher import Batcher, QueueFull

__all__ = ["Batcher", "QueueFull", "ServeConfig", "create_app", "serve"]

#: hosts a server may bind to without a token
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve(model, *, host: str = "127.0.0.1", port: int = 8750, config: ServeConfig | None = None,
          backend: str = "auto", device: str = "auto",
          log_level: str = "warning") -> None:  # fmt: skip
    """Serve ``model`` on ``host:port`` until interrupted. A host other than loopback needs a
    token (``config.token``): the service is never open to the network by default.

    Parameters
    ----------
    model : path
        An exported ``.onnx``.
    host : str, default "127.0.0.1"
        Where to bind.
    port : int, default 8750
        The port.
    config : ServeConfig, optional
        Limits, batching, token.
    backend, device : str
        See :func:`ainu_engine.backends.create_backend`.
    log_level : str
        uvicorn's.

    Raises
    ------
    ValueError
        A host other than loopback without a token.
    """
    import uvicorn

    config = config or ServeConfig()
    if host not in LOOPBACK and not config.token:
        raise ValueError(f"binding to {host!r} (not loopback) needs a token (--token-file)")
    app = create_app(model, config, backend=backend, device=device)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_keep_alive=30,
                limit_concurrency=max(64, 4 * config.queue_size))  # fmt: skip

"""The ``ainu-engine`` command line: a thin layer over ``ainu_engine`` functions."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return (and, as a console script, exit with) its exit code.

    Exit codes: 0 success; 1 an input or output failed (one line per failure on stderr);
    2 a usage error; 130 interrupted.
    """
    from ._app import app
    from ._errors import EXIT_INTERRUPTED, report

    args = sys.argv[1:] if argv is None else list(argv)
    # --debug is a global option: it stands before the command name
    debug = (
        "--debug"
        in args[: next((i for i, a in enumerate(args) if not a.startswith("-")), len(args))]
    )
    try:
        # Standalone mode: typer prints usage errors itself and exits 2; commands end with
        # typer.Exit(code). Errors from engine code propagate to here.
        app(args=args, prog_name="ainu-engine", standalone_mode=True)
    except SystemExit as exc:
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 - the one place that turns errors into exit codes
        return report(err, debug=debug or None)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

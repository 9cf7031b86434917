"""The one output sink of the CLI: data on stdout (text or JSON Lines), progress and logs on
stderr."""

from __future__ import annotations

import sys
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..strict_json import dumps


class Output:
    """Where a command's results, warnings and progress go.

    Parameters
    ----------
    json_lines : bool
        Print each record as one JSON object per line on stdout instead of text.
    """

    def __init__(self, *, json_lines: bool = False) -> None:
        self.json_lines = json_lines
        self.failed = 0
        self.out = Console(file=sys.stdout, highlight=False, soft_wrap=True)
        self.err = Console(file=sys.stderr, highlight=False, soft_wrap=True)

    def record(self, obj: dict, text: str | None = None) -> None:
        """Emit one result: JSON line in --json mode, else ``text`` (rich markup allowed)."""
        if self.json_lines:
            sys.stdout.write(dumps(obj, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        elif text is not None:
            self.out.print(text)

    def failure(self, err: BaseException, record: dict, *, debug: bool | None) -> None:
        """One input of a batch failed: re-raise usage errors (they concern every input),
        else emit ``record`` with the error and the one-line message on stderr, and count it."""
        from ._errors import EXIT_USAGE, describe, report

        if describe(err)[1] == EXIT_USAGE:
            raise err
        self.failed += 1
        self.record({**record, "error": str(err) or type(err).__name__}, None)
        report(err, debug=debug)

    def finish(self, total: int) -> None:
        """End a batch: say how many of ``total`` inputs failed, exit 1 if any did, else 0."""
        import typer

        if self.failed and total > 1:
            self.log(f"{self.failed} of {total} files failed")
        raise typer.Exit(1 if self.failed else 0)

    def warn(self, message: str) -> None:
        self.err.print(f"[yellow]warning:[/] {escape(message)}")

    def error(self, message: str) -> None:
        self.err.print(f"[red]error:[/] {escape(message)}")

    def log(self, message: str) -> None:
        self.err.print(escape(message))

    def bar(self, fields: str, *, transient: bool, disable: bool = False) -> Progress:
        """The CLI's progress bar on stderr: description, bar, n/total, ``fields`` (a rich
        format string over ``task.fields``), elapsed and remaining time."""
        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(fields),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.err,
            transient=transient,
            disable=disable,
        )

    @contextmanager
    def progress(self, total: int, description: str):
        """A progress bar on stderr (only when there is more than one item and stderr is a TTY
        or the count is large); yields a function to call once per finished item."""
        show = total > 1 and (self.err.is_terminal or total >= 20)
        if not show:
            yield lambda: None
            return
        with self.bar("{task.fields[rate]}", transient=False) as bar:
            task = bar.add_task(description, total=total, rate="")

            def advance():
                bar.advance(task)
                t = bar.tasks[0]
                if t.elapsed:
                    bar.update(task, rate=f"{t.completed / t.elapsed:.1f} files/s")

            yield advance

    @contextmanager
    def stage(self, description: str, total: int):
        """Progress of one stage of long work (e.g. the epochs of one training): a bar with a
        status text on a terminal, else a plain line about every 5 % of the stage. Yields a
        function ``step(status="")`` to call once per finished step."""
        if self.err.is_terminal:
            with self.bar("{task.fields[status]}", transient=True) as bar:
                task = bar.add_task(description, total=total, status="")

                def step(status: str = "") -> None:
                    bar.update(task, advance=1, status=escape(status))

                yield step
            return
        every = max(1, total // 20)
        done = 0

        def step(status: str = "") -> None:
            nonlocal done
            done += 1
            if done % every == 0 or done == total:
                self.log(f"{description}: {done}/{total} {status}".rstrip())

        yield step

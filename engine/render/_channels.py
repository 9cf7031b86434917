"""Which of a file's channels feed which of a model's (or a render's) image channels.

A model knows its channels by name (``ModelInfo.channel_names``, e.g. ``("polII",)``) and, where
its RenderSpec lists them, by file channel id. A file knows its channels by id and, where the
format records them, by name (N-STORM ``561``/``647``, the simulator's ``polII``/``h3``). They are
matched by name where both have names, else by the RenderSpec's ids; a single-channel model takes a
single-channel file as it is. Anything else — above all a multi-channel file for a model with
fewer channels — is a :class:`~ainu_engine.errors.ChannelError` that names both channel lists and
the option that maps them: channels are never merged silently.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from ..errors import ChannelError, InputError
from ..io import Localizations
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
]

#: the names training gives channels that had none (``ch1``): they name nothing
_PLACEHOLDER = re.compile(r"ch\d+")


def file_channels(locs: Localizations) -> dict[int, str | None]:
    """Channel id -> name (None where the file names none) of the channels ``locs`` has or its
    file names; a table without a channel column is one channel, id 0.

    Parameters
    ----------
    locs : Localizations
        A file's localizations.

    Returns
    -------
    dict of int to str or None

    Examples
    --------
    >>> import numpy as np
    >>> from ainu_engine.io import Localizations, Metadata
    >>> meta = Metadata(channel_names={1: "561", 2: "647"})
    >>> file_channels(Localizations(np.zeros(3), np.zeros(3), channel=[1, 2, 2], meta=meta))
    {1: '561', 2: '647'}
    """
    names = {int(k): str(v) for k, v in (locs.meta.channel_names or {}).items()}
    if locs.channel is None:
        ids = set(names) or {0}
    else:
        ids = set(locs.channel_counts())
    return {c: names.get(c) for c in sorted(ids | set(names))}


def describe_channels(channels: Mapping[int, str | None]) -> str:
    """``"1 (561), 2 (647)"``: a file's channels for a message.

    Parameters
    ----------
    channels : mapping of int to str or None
        Channel id -> name (:func:`file_channels`).

    Returns
    -------
    str
    """
    return ", ".join(f"{c} ({n})" if n else str(c) for c, n in channels.items()) or "none"


def _norm(name) -> str:
    return str(name).strip().casefold()


def _file_id(key: str, channels: Mapping[int, str | None]) -> int | None:
    """The file channel a user's key (a name, else an id) means, or None."""
    by_name = {_norm(n): c for c, n in channels.items() if n}
    if _norm(key) in by_name:
        return by_name[_norm(key)]
    try:
        cid = int(str(key).strip())
    except ValueError:
        return None
    return cid if cid in channels else None


def select_channels(
    locs: Localizations, wanted: Sequence[str | int], *, option: str = "--channels"
) -> tuple[int, ...]:
    """File channel ids of ``wanted`` (names or ids, e.g. ``["647", "561"]`` or ``[1, 2]``), in
    that order; a key that is neither a name nor an id of the file is an error listing the file's
    name <-> id map.

    Parameters
    ----------
    locs : Localizations
        A file's localizations.
    wanted : sequence of str or int
        Names or ids.
    option : str
        The option named in the error.

    Returns
    -------
    tuple of int

    Raises
    ------
    ainu_engine.errors.ChannelError
        A key that is neither a name nor an id of the file.

    Examples
    --------
    >>> import numpy as np
    >>> from ainu_engine.io import Localizations, Metadata
    >>> meta = Metadata(channel_names={1: "561", 2: "647"})
    >>> locs = Localizations(np.zeros(3), np.zeros(3), channel=[1, 2, 2], meta=meta)
    >>> select_channels(locs, ["647", "1"])
    (2, 1)
    """
    chans = file_channels(locs)
    ids = []
    for key in wanted:
        cid = _file_id(str(key), chans)
        if cid is None:
            raise ChannelError(
                f"{option} names channel {str(key)!r}, which the file does not have",
                path=locs.meta.source_path,
                found=f"channels {describe_channels(chans)} (id (name))",
                hint=f"give names or ids of these to {option}",
            )
        ids.append(cid)
    if len(set(ids)) != len(ids):
        raise ChannelError(
            f"{option} names one file channel twice ({', '.join(map(str, wanted))})",
            path=locs.meta.source_path,
            found=f"channels {describe_channels(chans)}",
        )
    return tuple(ids)


def parse_channel_map(text: str | None) -> dict[str, str] | None:
    """``"polII=647,h3=561"`` -> ``{"polII": "647", "h3": "561"}`` (model channel = file channel).

    Parameters
    ----------
    text : str or None
        ``MODEL=FILE`` pairs, comma-separated.

    Returns
    -------
    dict or None
        None for no text.

    Raises
    ------
    ValueError
        A pair without ``=``, or a model channel named twice.

    Examples
    --------
    >>> parse_channel_map("polII=647")
    {'polII': '647'}
    """
    if not text:
        return None
    out: dict[str, str] = {}
    for item in text.split(","):
        model, sep, file = item.partition("=")
        if not sep or not model.strip() or not file.strip():
            raise ValueError(f"expected MODELCH=FILECH pairs, got {item.strip()!r}")
        if _norm(model) in {_norm(k) for k in out}:
            raise ValueError(f"model channel {model.strip()!r} is mapped twice")
        out[model.strip()] = file.strip()
    return out


def parse_row_channels(text: str | None) -> dict[str, str] | None:
    """A manifest row's ``channels`` cell, ``"cpla2=647;5lo=561"`` ->
    ``{"cpla2": "647", "5lo": "561"}`` (protein or model channel = file channel; ``;`` or ``,``
    between the pairs).

    Parameters
    ----------
    text : str or None
        ``NAME=CHANNEL`` pairs.

    Returns
    -------
    dict or None
        None for an empty cell.

    Raises
    ------
    ValueError
        A pair without ``=``, or a name given twice.

    Examples
    --------
    >>> parse_row_channels("cpla2=647;5lo=561")
    {'cpla2': '647', '5lo': '561'}
    """
    return parse_channel_map((text or "").strip().replace(";", ","))


def row_channel_map(
    row_map: Mapping[str, str], model_channels: Sequence[str], *, path=None
) -> dict[str, str]:
    """The part of a manifest row's channel map that feeds a model's channels (a row may name
    more proteins than the model takes); a model channel the row does not name is an error naming
    both lists — never a silent pick.

    Parameters
    ----------
    row_map : mapping of str to str
        The row's map (:func:`parse_row_channels`).
    model_channels : sequence of str
        The model's channel names (``ModelInfo.channel_names``).
    path : path, optional
        The row's file, for the error.

    Returns
    -------
    dict of str to str
        Model channel -> file channel.

    Raises
    ------
    ainu_engine.errors.ChannelError
        The row does not name every model channel.

    Examples
    --------
    >>> row_channel_map({"cpla2": "647", "5lo": "561"}, ["cpla2"])
    {'cpla2': '647'}
    """
    by_name = {_norm(k): (k, v) for k, v in row_map.items()}
    missing = [str(m) for m in model_channels if _norm(m) not in by_name]
    if missing:
        raise ChannelError(
            f"the manifest row maps {', '.join(sorted(row_map))}; the model takes "
            f"{', '.join(map(str, model_channels))}",
            path=path,
            found=f"no {', '.join(missing)}",
            hint="name the model's channels in the row's channels column (e.g. "
            f"{';'.join(f'{m}=CHANNEL' for m in model_channels)}), or use another model",
        )
    return {str(m): by_name[_norm(m)][1] for m in model_channels}


def match_channels(
    locs: Localizations,
    spec: RenderSpec,
    model_channels: Sequence[str],
    channel_map: Mapping[str, str] | None = None,
    *,
    option: str = "--channel-map",
) -> RenderSpec:
    """``spec`` with the file channel ids that feed the model's channels (``spec`` itself where
    its ids, or its single channel, already fit the file).

    Parameters
    ----------
    locs : Localizations
        A file's (or one nucleus') localizations, with the file's channel names in ``meta``.
    spec : RenderSpec
        The model's RenderSpec.
    model_channels : sequence of str
        The model's channel names (``ModelInfo.channel_names``), one per image channel.
    channel_map : mapping, optional
        Model channel (name, id or position) -> file channel (name or id), for files whose
        channels are named otherwise; every model channel must be mapped.
    option : str
        The option the user fixes a mismatch with, for the error's hint: ``--channel-map``
        (screen, explain, evaluate: ``MODELCH=FILECH`` pairs) or ``--channels`` (train, render:
        file channels).

    Returns
    -------
    RenderSpec

    Raises
    ------
    ainu_engine.errors.ChannelError
        The file's channels do not match the model's and no (valid) map says how they do.

    Examples
    --------
    >>> import numpy as np
    >>> from ainu_engine.io import Localizations, Metadata
    >>> meta = Metadata(channel_names={1: "561", 2: "647"})
    >>> locs = Localizations(np.zeros(3), np.zeros(3), channel=[1, 2, 2], meta=meta)
    >>> match_channels(locs, RenderSpec(), ["polII"], {"polII": "647"}).channels
    (2,)
    """
    chans = file_channels(locs)
    n = spec.n_channels
    ids = list(spec.channels) if spec.channels is not None else [None] * n
    names = [str(c) for c in model_channels][:n] if len(model_channels) >= n else [None] * n
    real = [None if nm is None or _PLACEHOLDER.fullmatch(nm) else nm for nm in names]

    def fail(problem: str) -> ChannelError:
        model = ", ".join(
            f"{nm or f'#{k}'}" + (f" (id {ids[k]})" if ids[k] is not None else "")
            for k, nm in enumerate(names)
        )
        picks = [chans[c] or str(c) for c in list(chans)[:n]]
        ex = (
            ",".join(f"{nm or k}={c}" for (k, nm), c in zip(enumerate(names), picks, strict=False))
            if option == "--channel-map"
            else ",".join(str(c) for c in list(chans)[:n])
        )
        return ChannelError(
            f"{problem}: the model's channels are {model}; "
            f"the file's are {describe_channels(chans)}",
            path=locs.meta.source_path,
            hint=f"say which file channel feeds each model channel with {option} {ex}",
        )

    if channel_map:
        found = []
        for k, nm in enumerate(names):
            keys = [nm, str(ids[k]) if ids[k] is not None else None, str(k)]
            keys = [_norm(x) for x in keys if x is not None]
            target = next((v for m, v in channel_map.items() if _norm(m) in keys), None)
            if target is None:
                raise fail(f"{option} does not map model channel {nm or k!r}")
            cid = _file_id(target, chans)
            if cid is None:
                raise fail(f"{option} maps {nm or k!r} to {target!r}, which the file does not have")
            found.append(cid)
        known = {_norm(x) for k, nm in enumerate(names) for x in (nm, ids[k], k) if x is not None}
        extra = [m for m in channel_map if _norm(m) not in known]
        if extra:
            raise fail(
                f"{option} names model channels the model does not have ({', '.join(extra)})"
            )
        if len(set(found)) != len(found):
            raise fail(f"{option} feeds two model channels from one file channel")
        return _with(spec, found, chans)
    file_named = {_norm(v): c for c, v in chans.items() if v}
    if any(real) and file_named:
        if all(nm is not None and _norm(nm) in file_named for nm in real):
            return _with(spec, [file_named[_norm(nm)] for nm in real], chans)
        raise fail("the channel names do not match")
    if spec.channels is not None:
        if all(c in chans for c in spec.channels):
            return spec
        raise fail(f"the file lacks channel id(s) {[c for c in spec.channels if c not in chans]}")
    if len(chans) <= 1:
        return spec
    raise fail(f"the model takes {n} channel{'s' if n > 1 else ''}, the file has {len(chans)}")


def _with(spec: RenderSpec, ids: list[int], chans: Mapping[int, str | None]) -> RenderSpec:
    """``spec`` rendering file channels ``ids``; a one-channel file keeps ``channels=None`` (all
    its localizations, also where it has no channel column)."""
    if len(chans) == 1 and len(ids) == 1:
        return spec if spec.channels is None else replace(spec, channels=None)
    return spec if spec.channels == tuple(ids) else replace(spec, channels=tuple(ids))


def manifest_channel_maps(inputs: Sequence[str | os.PathLike]) -> dict[str, dict[str, str]]:
    """The channel map of every file that a manifest among ``inputs`` lists with a ``channels``
    column of ``NAME=CHANNEL`` pairs (``cpla2=647;5lo=561``: the same protein imaged in different
    channels in different files), keyed by the file's resolved path.

    Parameters
    ----------
    inputs : sequence of str or os.PathLike
        What :func:`expand_inputs` takes; only manifests give maps.

    Returns
    -------
    dict of str to dict
        Resolved path -> the row's map (empty without such manifests).

    Raises
    ------
    ainu_engine.errors.InputError
        A malformed map, or one file given two different maps.
    """
    from ..nuclei import manifest_column

    maps: dict[str, dict[str, str]] = {}
    for raw in inputs:
        p = Path(raw)
        rows = manifest_column(p, "channels")
        if not rows or not any("=" in cell for _, cell in rows):
            continue  # no maps: channel names shared by every file (``polII+h3``), or none
        for i, (f, cell) in enumerate(rows):
            try:
                m = parse_row_channels(cell)
            except ValueError as err:
                raise InputError(f"channels: {err}", path=p, where=f"line {i + 2}") from err
            if not m:
                continue
            key = str(f)
            if maps.get(key, m) != m:
                raise InputError(
                    "one file is listed with two different channel maps",
                    path=p, where=f"line {i + 2}", found=f"{maps[key]} and {m}",
                )  # fmt: skip
            maps[key] = m
    return maps

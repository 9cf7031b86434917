"""Live classification while a nucleus is imaged: :class:`LiveNucleus` takes localizations as
they come (an exact running render, O(new) per batch), gives the running call with how firm it
is, and says when imaging longer would not change it (:class:`StopRule`); :func:`replay` plays a
recorded acquisition back in frame order as if it were live (``ainu-engine live``).

>>> from ainu_engine.live import LiveNucleus, StopRule
>>> from ainu_engine.io import read
>>> locs = read("examples/screen/slide1/somatic_0000.bin")
>>> model = "examples/models/hipsc_vs_somatic.small_cnn.SIMULATED.onnx"
>>> with LiveNucleus(model, stop_rule=StopRule(p=0.8, m=2, min_localizations=1000)) as live:
...     for start in range(0, locs.n, 4000):
...         report = live.add(locs[start : start + 4000])
...         call = live.call()
>>> call.label, call.stop.stop
('somatic', True)
"""

from ._replay import ReplayResult, plot_trajectory, plot_trajectory_for, replay, replay_file
from ._session import AddReport, LiveCall, LiveNucleus, SessionClosed, StopDecision, StopRule

__all__ = [
    "AddReport",
    "ReplayResult",
    "plot_trajectory",
    "plot_trajectory_for",
    "LiveCall",
    "LiveNucleus",
    "SessionClosed",
    "StopDecision",
    "StopRule",
    "replay",
    "replay_file",
]

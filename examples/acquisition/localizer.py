"""Localizing camera frames with Picasso (``picasso.localize`` identification and
``picasso.gausslq`` least-squares Gaussian fits), batch by batch as they are acquired."""

from __future__ import annotations

import numpy as np


def localize(frames: np.ndarray, first_frame: int, camera_info: dict, *, pixel_nm: float,
             origin_nm=(0.0, 0.0), box: int = 7,
             min_net_gradient: float = 2000.0) -> dict:  # fmt: skip
    """Localizations (x_nm, y_nm, frame, precision_nm, photons) of a stack of frames (N, H, W),
    in the coordinates of the camera's simulated sample (``origin_nm`` + pixel centre * pixel)."""
    from picasso import gausslq
    from picasso import localize as plocalize

    movie = np.ascontiguousarray(frames, np.float32)
    ids = plocalize.identify(movie, min_net_gradient, box, threaded=False, return_info=False)
    if len(ids) == 0:
        empty = np.zeros(0)
        return {
            "x_nm": empty,
            "y_nm": empty,
            "frame": empty.astype(np.int64),
            "precision_nm": empty,
            "photons": empty,
        }
    spots = plocalize.get_spots(movie, ids, box, camera_info)
    theta = gausslq.fit_spots(spots)
    locs = gausslq.locs_from_fits(ids, theta, box, em=False)
    ok = np.isfinite(locs["x"]) & np.isfinite(locs["y"]) & (locs["photons"] > 0)
    locs = locs[ok]
    # Picasso's pixel coordinates: 0 at the centre of the first pixel
    x = origin_nm[0] + (np.asarray(locs["x"]) + 0.5) * pixel_nm
    y = origin_nm[1] + (np.asarray(locs["y"]) + 0.5) * pixel_nm
    prec = np.sqrt(0.5 * (np.asarray(locs["lpx"]) ** 2 + np.asarray(locs["lpy"]) ** 2)) * pixel_nm
    return {"x_nm": x, "y_nm": y, "frame": np.asarray(locs["frame"]).astype(np.int64) + first_frame,
            "precision_nm": prec, "photons": np.asarray(locs["photons"], float)}  # fmt: skip

"""Does PatchNet look at the heterochromatin? Its heat map against the simulator's HC truth.

For every kept nucleus of a segmentation folder: PatchNet's global heat map (each pixel the mean
probability of TARGET over the patches covering it), the simulator's heterochromatin pixels cut
out the way the crop was (same box, same centring), and the pixel ROC AUC of the heat map for
heterochromatin inside the nucleus (0.5: the map ignores it; 1: the HC pixels are the hottest).
Prints JSON (per class: nuclei, mean and SD of the AUC, mean heat on HC and on other nucleus
pixels) and draws OUT.png (crops, HC truth, heat maps of a few nuclei a class).
Usage:  python patchnet_hc.py SEG_DIR TRUTH_DIR MODEL.onnx TARGET OUT
"""

import json
import sys
from pathlib import Path

import numpy as np
import tifffile
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score

from ainu_engine.scenmed import WidefieldClassifier, crop_centred, read_segmentation

seg, truth, model, target, out = sys.argv[1:6]
table = read_segmentation(seg)
rows = [r for r in table.rows if r["reason"] == "kept"]
per_class: dict[str, list] = {}
examples: dict[str, list] = {}
hc_cache: dict[str, np.ndarray] = {}
with WidefieldClassifier.load(model) as clf:
    for r in rows:
        field = r["field"]
        if field not in hc_cache:
            hc_cache[field] = tifffile.imread(Path(truth) / f"{field}_hc.tif").astype(bool)
        hc_field = hc_cache[field]
        box = tuple(int(r[k]) for k in ("bbox_r0", "bbox_c0", "bbox_r1", "bbox_c1"))
        crop, mask = table.crops[r["crop"]], table.masks[r["crop"]]
        hc, _ = crop_centred(hc_field.astype(np.float32), np.ones_like(hc_field), box, crop.shape[0])
        hc = (hc > 0) & mask
        heat = clf.patch_map(crop, target=target)
        ok = mask & np.isfinite(heat)
        if hc[ok].sum() < 5 or (~hc[ok]).sum() < 5:
            continue
        auc = roc_auc_score(hc[ok], heat[ok])
        per_class.setdefault(r["label"], []).append(
            (auc, float(heat[ok & hc].mean()), float(heat[ok & ~hc].mean())))
        if len(examples.setdefault(r["label"], [])) < 3:
            examples[r["label"]].append((crop, hc, heat))
summary = {
    "target": target,
    "classes": {c: {"nuclei": len(v), "auc_mean": float(np.mean([a for a, _, _ in v])),
                    "auc_sd": float(np.std([a for a, _, _ in v])),
                    "heat_on_hc": float(np.mean([h for _, h, _ in v])),
                    "heat_elsewhere": float(np.mean([e for _, _, e in v]))}
                for c, v in sorted(per_class.items())},
}
print(json.dumps(summary, indent=1))
labels = sorted(examples)
fig = Figure(figsize=(13, 1.7 * len(labels) + 0.4))
axes = fig.subplots(len(labels), 9, squeeze=False)
for i, c in enumerate(labels):
    for j, (crop, hc, heat) in enumerate(examples[c]):
        for k, (img, title, cmap) in enumerate(
            [(crop, f"{c} crop", "gray"), (hc, "HC truth", "gray"),
             (heat, f"p({target})", "magma")]):
            ax = axes[i, 3 * j + k]
            ax.imshow(img, cmap=cmap, vmin=0 if k else None, vmax=1 if k else None)
            ax.set_title(title, fontsize=7)
            ax.set_axis_off()
fig.suptitle("PatchNet heat map against the simulated heterochromatin (SIMULATED data)", fontsize=9)
fig.savefig(out + ".png", dpi=110, bbox_inches="tight")

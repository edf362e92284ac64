"""The ONNX export format of ``yolact export``: graph names and the self-describing metadata.

One definition read by the exporter (:mod:`.onnx_export`) and the onnxruntime backend
(:mod:`.backends.onnxruntime_backend`); docs/onnx.md describes the same contract for other runtimes.

The graph: ``input`` float32 [N,3,S,S] (what :func:`yolact_ros.model.transform.resize_and_normalize`
makes of BGR images: RGB, normalised, NCHW) -> ``loc`` [N,P,4], ``conf`` [N,P,C] (softmax),
``mask`` [N,P,K] (tanh), ``proto`` [N,S/4,S/4,K] (ReLU, channels last), ``priors`` [P,4]
(constant).  Inputs and outputs are float32 in every precision.  YOLACT++'s mask-IoU net
runs on post-NMS masks, so it is a second, small ONNX model stored (serialised, base64) in
the main file's metadata: ``masks`` float32 [D,1,S/4,S/4] -> ``maskiou`` [D,C-1].
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass

from .. import __version__
from ..model.config import YolactConfig
from ..model.transform import describe_input

EXPORTER = "yolact_ros"
#: bumped when the graph contract or the metadata change incompatibly
FORMAT_VERSION = 1
INPUT_NAME = "input"
OUTPUT_NAMES = ("loc", "conf", "mask", "proto", "priors")
MASKIOU_INPUT, MASKIOU_OUTPUT = "masks", "maskiou"
DCN_MODES = ("grid_sample", "native")
PRECISIONS = ("fp32", "fp16")
#: lowest opset per DCN mode: GridSample is opset 16, DeformConv opset 19
MIN_OPSET = {"grid_sample": 16, "native": 19, "none": 13}
DEFAULT_OPSET = {"grid_sample": 17, "native": 19, "none": 17}

OUTPUT_DOC = {
    "loc": "[N,P,4] box regressions relative to the priors (variances 0.1, 0.2)",
    "conf": "[N,P,C] class scores after softmax, background at column 0",
    "mask": "[N,P,K] mask coefficients after tanh",
    "proto": "[N,Hp,Wp,K] prototypes after ReLU, channels last",
    "priors": "[P,4] anchors (cx, cy, w, h) relative to the input; constant",
}

_REQUIRED = (
    "exporter",
    "format",
    "config_json",
    "input_name",
    "input_size",
    "batch",
    "precision",
    "dcn",
    "output_names",
)


class OnnxModelError(ValueError):
    """An ONNX file that is missing, unreadable, not a ``yolact export`` file, or fed the wrong input."""


class OnnxBackendError(RuntimeError):
    """onnxruntime (or the requested execution provider) is not available, or cannot run the graph."""


@dataclass(frozen=True)
class ExportInfo:
    """What an export contains: the metadata, typed.  ``batch`` None = dynamic batch axis;
    ``dcn``: ``grid_sample``, ``native`` or ``none`` (no DCN layers in the config)."""

    config: YolactConfig
    input_size: int
    batch: "int | None"
    precision: str
    dcn: str
    opset: int
    exporter_version: str = __version__
    maskiou_onnx: "bytes | None" = None

    def to_metadata(self) -> dict[str, str]:
        cfg = self.config
        meta = {
            "exporter": EXPORTER,
            "exporter_version": self.exporter_version,
            "format": str(FORMAT_VERSION),
            "config_name": cfg.name,
            "config_json": json.dumps(cfg.to_dict()),
            "class_names": json.dumps(list(cfg.class_names)),
            "input_name": INPUT_NAME,
            "input_size": str(self.input_size),
            "input_shape": json.dumps([self.batch if self.batch else "batch", 3, self.input_size, self.input_size]),
            "batch": str(self.batch) if self.batch else "dynamic",
            "normalization": json.dumps(describe_input(self.input_size, cfg.backbone)),
            "output_names": json.dumps(list(OUTPUT_NAMES)),
            "outputs": json.dumps(OUTPUT_DOC),
            "precision": self.precision,
            "dcn": self.dcn,
            "opset": str(self.opset),
            "maskiou": "embedded" if self.maskiou_onnx else "none",
        }
        if self.maskiou_onnx:
            meta.update(
                {
                    "maskiou_input": MASKIOU_INPUT,
                    "maskiou_output": MASKIOU_OUTPUT,
                    "maskiou_onnx_base64": base64.b64encode(self.maskiou_onnx).decode("ascii"),
                }
            )
        return meta

    @staticmethod
    def from_metadata(meta: Mapping[str, str], source: str = "model") -> "ExportInfo":
        if meta.get("exporter") != EXPORTER:
            raise OnnxModelError(
                f"{source}: not a yolact_ros export (its ONNX metadata has no "
                f"'exporter: {EXPORTER}'); write one with 'yolact export'"
            )
        missing = [k for k in _REQUIRED if k not in meta]
        if missing:
            raise OnnxModelError(
                f"{source}: incomplete yolact_ros metadata (missing {', '.join(missing)}); "
                f"re-export it with 'yolact export'"
            )
        if not str(meta["format"]).isdigit() or int(meta["format"]) > FORMAT_VERSION:
            raise OnnxModelError(
                f"{source}: export format {meta['format']!r} is newer than this yolact_ros "
                f"({__version__}, format {FORMAT_VERSION}) reads"
            )
        try:
            cfg = YolactConfig.from_dict(json.loads(meta["config_json"]))
            outputs = tuple(json.loads(meta["output_names"]))
            size = int(meta["input_size"])
            batch = None if meta["batch"] == "dynamic" else int(meta["batch"])
            opset = int(meta.get("opset", 0))
            maskiou_b64 = meta.get("maskiou_onnx_base64")
            maskiou = base64.b64decode(maskiou_b64) if maskiou_b64 else None
        except (TypeError, ValueError, KeyError) as exc:
            raise OnnxModelError(f"{source}: unreadable yolact_ros metadata ({exc})") from None
        if meta["input_name"] != INPUT_NAME or outputs != OUTPUT_NAMES:
            raise OnnxModelError(
                f"{source}: unexpected graph names (input {meta['input_name']!r}, outputs "
                f"{list(outputs)}; expected {INPUT_NAME!r}, {list(OUTPUT_NAMES)})"
            )
        if cfg.use_maskiou and maskiou is None:
            raise OnnxModelError(f"{source}: a YOLACT++ export without its mask-IoU graph; re-export it")
        return ExportInfo(
            config=cfg,
            input_size=size,
            batch=batch,
            precision=meta["precision"],
            dcn=meta["dcn"],
            opset=opset,
            exporter_version=meta.get("exporter_version", ""),
            maskiou_onnx=maskiou,
        )

"""Compression stage: INT8/FP16 quantization and pruning, measured.

Submodules (imported on use, so importing this package is free):

* :mod:`.quantize` -- front door: ``quantize(source, out=, backend=, calibration=)``,
  ``quantize_onnx``, ``quantize_openvino``, ``quantize_onnx_dynamic``, ``fp16_ir``;
* :mod:`.recipes` -- accuracy-aware INT8 without labels: each back end's ordered recipes,
  searched for top-1 agreement with FP32 on held-out calibration images;
* :mod:`.onnx_int8` / :mod:`.openvino_int8` -- the two INT8 back ends (and their recipes);
* :mod:`.qat` -- quantization-aware training exported to INT8 ONNX;
* :mod:`.prune` / :mod:`.prune_structured` / :mod:`.prune_run` -- unstructured and
  structured pruning, ``reshape_to_state_dict``, run-to-run pruning with fine-tuning;
* :mod:`.report` / :mod:`.pipeline` -- the accuracy/size/latency report of all variants.

Calibration data comes from :mod:`caltech_edge.data.calibration`.
"""

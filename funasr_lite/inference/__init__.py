"""The inference pipeline: model dirs loaded and checked, batch decoding to ``1best_recog``
(``speech2text``), long recordings with VAD and punctuation (``longform``), the ONNX backend, and the
``1best_recog`` file formats (``writers``)."""

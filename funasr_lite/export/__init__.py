"""Export: a FunASR-layout model dir from an exp dir (``model_dir``; speaker models: ``speaker_model_dir``) and
its ONNX graphs (``onnx_export``)."""

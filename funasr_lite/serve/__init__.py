"""The server (``funasr_lite.bin.serve``; docs/server.md): OpenAI-compatible HTTP, FunASR's WebSocket
protocol and a web page over the API's recognisers, on FastAPI + uvicorn.

* :mod:`funasr_lite.serve.engine`: the models, the work pool and the admission limits;
* :mod:`funasr_lite.serve.openai_format`: results in OpenAI's response formats;
* :mod:`funasr_lite.serve.funasr_ws`: FunASR's WebSocket protocol, one stream at a time;
* :mod:`funasr_lite.serve.app`: the ASGI app that ties them to routes.

The layer sits above the API (it serves the API's recognisers) and below ``bin``.
"""

r"""Serve a model (docs/server.md): OpenAI-compatible HTTP, FunASR's WebSocket protocol, a web page.

  python -m funasr_lite.bin.serve --model_dir DIR [--vad_model_dir VAD] [--punc_model_dir PUNC] \
      [--online_model_dir STREAMING] [--host 127.0.0.1] [--port 10095] [--certfile C --keyfile K]

Then ``curl -F file=@a.wav http://127.0.0.1:10095/v1/audio/transcriptions``, the ``openai``
package with ``base_url="http://127.0.0.1:10095/v1"``, FunASR's WebSocket clients at
``ws://127.0.0.1:10095``, or a browser at ``http://127.0.0.1:10095/``. Binds to localhost unless
``--host`` says otherwise. Ctrl-C / SIGTERM stop taking new work and finish what is running.
"""

import logging
import sys

from funasr_lite.utils.cli import make_parser
from funasr_lite.utils.log import setup_logging


def build_parser():
    parser = make_parser("funasr_lite.bin.serve", __doc__)
    parser.add_argument("--model_dir", required=True, help="the offline model dir (ours, FunASR's, or an exp dir)")
    parser.add_argument("--checkpoint", default=None, help="with an exp dir: the checkpoint (default: its best)")
    parser.add_argument("--vad_model_dir", default=None,
                        help="FSMN-VAD dir: uploads are cut into segments (sentences, any length); 2-pass uses it "
                        "(default there: the released one)")
    parser.add_argument("--punc_model_dir", default=None, help="punctuation model dir (offline and 2-pass text)")
    parser.add_argument("--online_model_dir", default=None,
                        help="a ParaformerStreaming dir: WebSocket modes online and 2pass (offline only without it, "
                        "unless --model_dir itself streams)")
    parser.add_argument("--sentence_marks", default=None,
                        help="with --punc_model_dir: the marks that end a sentence (segments, srt; default 。？！)")
    parser.add_argument("--quantized", action="store_true",
                        help="the offline model's Linears in int8 on the CPU (docs/deploy.md; faster, CER within "
                             "a few tenths: bench/RESULTS.md)")
    parser.add_argument("--model_name", default=None, help="the id /v1/models lists (default: the dir's name)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=10095)
    parser.add_argument("--certfile", default=None, help="TLS certificate (PEM): serve https:// and wss://")
    parser.add_argument("--keyfile", default=None, help="TLS private key (PEM)")
    parser.add_argument("--workers", type=int, default=2, help="threads running model work")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per model call")
    parser.add_argument("--max_connections", type=int, default=32, help="open WebSocket streams (more: closed, 1013)")
    parser.add_argument("--max_pending", type=int, default=64, help="model calls queued or running (more: 503 / 1013)")
    parser.add_argument("--max_upload_mb", type=float, default=100.0, help="request body limit (413 above)")
    parser.add_argument("--max_message_mb", type=float, default=16.0, help="one WebSocket message (1009 above)")
    parser.add_argument("--max_stream_s", type=float, default=3600.0, help="audio one stream may buffer (offline mode)")
    parser.add_argument("--idle_timeout_s", type=float, default=120.0, help="close a WebSocket silent this long")
    parser.add_argument("--graceful_timeout_s", type=float, default=30.0,
                        help="at shutdown, wait this long for running requests")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    logger = logging.getLogger("serve")
    if (args.certfile is None) != (args.keyfile is None):
        logger.error("--certfile and --keyfile go together")
        return 2
    import uvicorn

    from funasr_lite.serve.app import create_app
    from funasr_lite.serve.engine import ServeEngine, ServeOptions

    options = ServeOptions(
        model_dir=args.model_dir, checkpoint=args.checkpoint, vad_model_dir=args.vad_model_dir,
        punc_model_dir=args.punc_model_dir, online_model_dir=args.online_model_dir, model_name=args.model_name,
        workers=args.workers, threads=args.threads, max_connections=args.max_connections,
        max_pending=args.max_pending, max_upload_mb=args.max_upload_mb, max_message_mb=args.max_message_mb,
        max_stream_s=args.max_stream_s, idle_timeout_s=args.idle_timeout_s,
        decode_options={**({"sentence_marks": args.sentence_marks} if args.sentence_marks else {}),
                        **({"quantized": True} if args.quantized else {})})
    try:
        engine = ServeEngine(options)
    except (ValueError, OSError) as e:
        logger.error("%s", e)
        return 1
    scheme = "https" if args.certfile else "http"
    logger.info("serving %s on %s://%s:%d/ (WebSocket %s://%s:%d/, modes %s)", engine.model_name, scheme, args.host,
                args.port, "wss" if args.certfile else "ws", args.host, args.port, ", ".join(engine.modes))
    uvicorn.run(create_app(engine), host=args.host, port=args.port, ssl_certfile=args.certfile,
                ssl_keyfile=args.keyfile, ws_max_size=int(args.max_message_mb * 1024 * 1024),
                ws_ping_interval=20.0, ws_ping_timeout=20.0, timeout_graceful_shutdown=args.graceful_timeout_s,
                log_config=None, access_log=False)
    engine.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

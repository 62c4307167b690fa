r"""Turn a Kaldi data dir (wav.scp, text) into WeNet-style tar shards for the streaming data path.

    python -m funasr_lite.bin.make_shards --data_dir data/train --out_dir data/train/shards \
        --shard_list data/train/shards.list [--config MODEL_DIR/config.yaml] [--utts_per_shard 1000] [--nj 4]

Each shard holds <utt>.wav (16-bit PCM at the config's frontend_conf.fs, resampled if needed) and
<utt>.txt pairs; the list names one shard a line (written last), shards.list.json their sizes.
Train on it with ``--train_data data/train/shards.list`` (funasr_lite.bin.train; dataset_conf.batch_bins
is then milliseconds, bucket_size the shuffle buffer) or ``finetune --dataset_type large``.
Utterances that cannot be read are named and skipped.
"""

import argparse
import logging
import sys

from funasr_lite.bin.compute_fbank import frontend_from_file
from funasr_lite.data.datadir import DataDirError
from funasr_lite.data.shards import ShardError, write_shards
from funasr_lite.utils.cli import make_parser
from funasr_lite.utils.config import ConfigError
from funasr_lite.utils.log import setup_logging

logger = logging.getLogger("make_shards")


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("funasr_lite.bin.make_shards", __doc__)
    parser.add_argument("--data_dir", required=True, help="Kaldi data dir with wav.scp and text")
    parser.add_argument("--out_dir", required=True, help="where shard_NNNNNN.tar go")
    parser.add_argument("--shard_list", required=True, help="the shards.list to write")
    parser.add_argument("--config", help="config with frontend_conf (sample rate); default 16 kHz")
    parser.add_argument("--utts_per_shard", type=int, default=1000)
    parser.add_argument("--nj", type=int, default=1, help="shards written in parallel by this many processes")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        write_shards(args.data_dir, args.out_dir, args.shard_list, frontend=frontend_from_file(args.config),
                     utts_per_shard=args.utts_per_shard, nj=args.nj)
    except (ShardError, DataDirError, ConfigError, OSError) as e:
        logger.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

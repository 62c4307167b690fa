#!/usr/bin/env python3
"""``python -m funasr_lite.bin.infer`` with a progress hold (for the decode kill drill). Same
arguments as infer; the hold is set by environment variables:

  DRILL_HOLD_AFTER_BATCHES=N  once the decoder has decoded N batches, create DRILL_HOLD_FLAG=PATH
                              (holding N) and sleep DRILL_HOLD_SECONDS (default 600) before the
                              next batch: the drill kills it there, mid-way through the set by its
                              own progress, however fast or busy the machine
"""

import os
import sys
import time


def main() -> int:
    from funasr_lite.bin import infer
    from funasr_lite.inference.speech2text import Speech2Text

    hold_after = os.environ.get("DRILL_HOLD_AFTER_BATCHES")
    if hold_after:
        decode_batch, decoded = Speech2Text.decode_batch, [0]

        def decode_batch_then_hold(self, batch):
            results = decode_batch(self, batch)
            decoded[0] += 1
            if decoded[0] >= int(hold_after):
                flag = os.environ["DRILL_HOLD_FLAG"]
                with open(flag + ".tmp", "w") as f:  # written whole, then renamed: the drill kills at once
                    f.write(f"{decoded[0]}\n")
                os.replace(flag + ".tmp", flag)
                time.sleep(float(os.environ.get("DRILL_HOLD_SECONDS", "600")))
            return results

        Speech2Text.decode_batch = decode_batch_then_hold
    return infer.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())

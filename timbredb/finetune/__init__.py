"""Fine-tuning: teach a model the crowd's timbre words, as a new embedding space (issue 15).

`timbredb finetune` trains on a base space's exp2 variants (an adapter on the stored
vectors, or LoRA on LAION-CLAP's audio encoder) and stores the result as a space
of its own, labelled ``<base>+ft-<hash>``, with audio and text vectors for
everything the base space holds; `timbredb query finetune` compares it with its
base on held-out words, held-out sources, exp1 and exp3. Importing this package
imports no torch: the training modules load it when a run trains.
"""

from __future__ import annotations

from timbredb.finetune.options import FinetuneOptions
from timbredb.finetune.run import run_finetune
from timbredb.spaces import TUNED_MARK

__all__ = ["TUNED_MARK", "FinetuneOptions", "run_finetune"]

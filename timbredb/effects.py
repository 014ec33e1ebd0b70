"""The Experiment 2 effects: one plain table of specs. Importing it imports no DSP.

Every rendered (or imported) exp2 variant names its ``effect`` (a label unique
across datasets) and its ``dataset`` (where the descriptor settings come
from). The labels are what `timbredb query exp2` prints; ``--effect`` accepts a
label, a kind (``compression`` = every compressor), a dataset name or
``every`` (see ``resolve``). Migration 0007 lists the same labels in the
tables' CHECK constraints.
"""

from __future__ import annotations

from dataclasses import dataclass

from timbredb.errors import AnalysisError


@dataclass(frozen=True)
class EffectSpec:
    """Cheap metadata of one exp2 effect.

    Attributes:
        label: what ``variants.effect`` holds and the analyses print.
        dataset: the descriptor dataset (``variants.dataset``): audealize | socialfx | safedb.
        kind: eq | reverb | compression | distortion.
        title: one line for humans.
    """

    label: str
    dataset: str
    kind: str
    title: str


EFFECTS: tuple[EffectSpec, ...] = (
    EffectSpec("eq", "audealize", "eq", "Audealize 40-band EQ (SocialFX EQ words)"),
    EffectSpec("reverb", "audealize", "reverb", "Rafii & Pardo reverberator (SocialFX reverb words)"),
    EffectSpec("socialfx-compression", "socialfx", "compression", "SocialFX compressor settings (pedalboard Compressor)"),
    EffectSpec("safe-eq", "safedb", "eq", "SAFE equaliser: low shelf, 3 peaks, high shelf"),
    EffectSpec("safe-compression", "safedb", "compression", "SAFE compressor (RMS detector, soft knee, make-up)"),
    EffectSpec("safe-distortion", "safedb", "distortion", "SAFE distortion (tone filter, 4x oversampled soft clipper)"),
)

DATASETS: tuple[str, ...] = ("audealize", "socialfx", "safedb")
#: what `query exp2` analyses without --effect: the study's own effects
DEFAULT: tuple[str, ...] = ("eq", "reverb")
#: the order effects are listed in ("all" last)
ORDER: dict[str, int] = {**{e.label: i for i, e in enumerate(EFFECTS)}, "all": len(EFFECTS) + 1}


def effects() -> dict[str, EffectSpec]:
    return {e.label: e for e in EFFECTS}


def dataset_of(label: str) -> str:
    """The descriptor dataset of an effect label."""
    spec = effects().get(label)
    if spec is None:
        raise AnalysisError(f"unknown effect {label!r}; known: {', '.join(effects())}")
    return spec.dataset


def resolve(value: str | None) -> list[str]:
    """The effect labels an ``--effect`` value names.

    Each comma-separated item is, in this order: an effect label (``eq``,
    ``safe-eq``, ...), ``every`` (all effects), a dataset (``safedb``: its
    effects) or a kind (``compression``: every compressor). None or "" is
    ``DEFAULT``, the study's EQ and reverb.

    Raises:
        AnalysisError: an item names nothing.
    """
    if value is None or not value.strip():
        return list(DEFAULT)
    table = effects()
    out: list[str] = []
    for item in (v.strip().lower() for v in value.split(",")):
        if not item:
            continue
        if item in table:
            found = [item]
        elif item == "every":
            found = list(table)
        elif item in DATASETS:
            found = [e.label for e in EFFECTS if e.dataset == item]
        else:
            found = [e.label for e in EFFECTS if e.kind == item]
        if not found:
            kinds = sorted({e.kind for e in EFFECTS})
            raise AnalysisError(
                f"--effect: {item!r} is not an effect ({', '.join(table)}), a kind ({', '.join(kinds)}), "
                f"a dataset ({', '.join(DATASETS)}) or 'every'"
            )
        out.extend(e for e in found if e not in out)
    return sorted(out, key=lambda e: ORDER[e])

"""The dataset registry: one plain table of specs. Importing it imports no dataset module.

A dataset is a folder under the data dir (or a hub dataset) that `timbredb
ingest NAME` stores: what it is called, the function that ingests it (a loader
string, imported only when it runs), where a missing copy is downloaded from,
the integrity checks `timbredb check` runs for it, the vocabulary its prompts
come from, and the experiments that read it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from timbredb.errors import DatasetError

if TYPE_CHECKING:
    from timbredb.ingest.ingestor import Ingestor
    from timbredb.ingest.options import IngestOptions


@dataclass(frozen=True)
class DownloadSource:
    """A public archive that holds the dataset's files.

    Attributes:
        url: the archive (a GitHub archive of the publishing project).
        members: archive path prefix (after its top folder) -> destination prefix under DATA_DIR/<name>/.
        marker: a path that must exist afterwards.
        complete: paths (under DATA_DIR/<name>/) a complete copy holds; when some are missing
            from an existing folder, the archive's absent files are added to it.
    """

    url: str
    members: dict[str, str]
    marker: str
    complete: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetSpec:
    """Cheap metadata of a dataset.

    Attributes:
        name: what `timbredb ingest NAME` accepts.
        title: one line for humans.
        ingest: "module:function(ingestor, data_dir, options) -> summary dict".
        download: where a missing copy comes from (None: not downloadable this way).
        integrity: (description, statement name) pairs; each statement counts offending rows.
        vocabulary: the built-in vocabulary its descriptors form (None if it has none).
        experiments: the experiments that read it.
        default: part of "every dataset" (`timbredb ingest` without targets); False for
            extra datasets that are ingested only when named (they cost minutes of rendering).
    """

    name: str
    title: str
    ingest: str
    download: DownloadSource | None = None
    integrity: tuple[tuple[str, str], ...] = ()
    vocabulary: str | None = None
    experiments: tuple[str, ...] = ()
    default: bool = True


#: the 21 studies of the timbremetrics collection (Tian et al. 2025: 334 stimuli, 2614 pairs; names as in
#: github.com/tiianhk/timbremetrics timbremetrics/true_dissim/); a copy lacking some is completed when online
TIMBREMETRICS_DATASETS: tuple[str, ...] = (
    "Barthet2010", "Grey1977", "Grey1978", "Iverson1993_Onset", "Iverson1993_Remainder", "Iverson1993_Whole",
    "Lakatos2000_Comb", "Lakatos2000_Harm", "Lakatos2000_Perc", "McAdams1995", "Patil2012_A3", "Patil2012_DX4",
    "Patil2012_GD4", "Saitis2020_e2set1_general", "Siedenburg2016_e2set1", "Siedenburg2016_e2set2",
    "Siedenburg2016_e2set3", "Siedenburg2016_e3", "Vahidi2020", "Zacharakis2014_english", "Zacharakis2014_greek",
)

DATASETS: tuple[DatasetSpec, ...] = (
    DatasetSpec(
        name="ccmusic",
        title="CCMusic instrument timbre ratings (61 instruments x 16 descriptors)",
        ingest="timbredb.datasets.ccmusic:ingest",
        integrity=(("ccmusic instruments whose recording is not stored", "check_rated_orphans"),),
        vocabulary="ccmusic",
        experiments=("exp1",),
    ),
    DatasetSpec(
        name="audealize",
        title="Audealize/SocialFX descriptor EQ and reverb settings, rendered on demo sources",
        ingest="timbredb.datasets.audealize_render:ingest",
        # Seetharaman & Pardo's Audealize API: descriptor dictionaries and the demo clips.
        download=DownloadSource(
            url="https://github.com/interactiveaudiolab/audealize_api/archive/HEAD.zip",
            members={"static/data/": "", "static/audio/": "audio/"},
            marker="eqpoints.json",
        ),
        integrity=(("exp2 variants whose rendered audio is not stored", "check_variant_orphans"),),
        vocabulary="study",
        experiments=("exp2",),
    ),
    DatasetSpec(
        name="timbremetrics",
        title="timbremetrics human timbre-dissimilarity studies (Tian et al. 2025)",
        ingest="timbredb.datasets.timbremetrics:ingest",
        # Tian et al.'s timbremetrics: stimuli and human dissimilarity matrices.
        download=DownloadSource(
            url="https://github.com/tiianhk/timbremetrics/archive/HEAD.zip",
            members={"timbremetrics/sounds/": "sounds/", "timbremetrics/true_dissim/": "true_dissim/"},
            marker="true_dissim",
            complete=tuple(f"true_dissim/{n}_dissimilarity_matrix.txt" for n in TIMBREMETRICS_DATASETS),
        ),
        integrity=(("timbremetrics stimuli whose audio is not stored", "check_dissim_orphans"),),
        experiments=("exp3",),
    ),
    # ---- more descriptor -> effect datasets for exp2 (rendered on the Audealize sources);
    # only ingested when named: they render a few hundred variants each
    DatasetSpec(
        name="socialfx-comp",
        title="SocialFX crowdsourced compressor settings per word, rendered on the exp2 sources",
        ingest="timbredb.datasets.socialfx:ingest",
        experiments=("exp2",),
        default=False,
    ),
    DatasetSpec(
        name="safedb",
        title="SAFE-DB words saved with SAFE equaliser, compressor and distortion settings, rendered on the exp2 sources",
        ingest="timbredb.datasets.safedb:ingest",
        experiments=("exp2",),
        default=False,
    ),
)


def datasets() -> dict[str, DatasetSpec]:
    return {d.name: d for d in DATASETS}


def default_datasets() -> list[str]:
    """What `timbredb ingest` without targets ingests ("every dataset")."""
    return [d.name for d in DATASETS if d.default]


def get(name: str) -> DatasetSpec:
    table = datasets()
    if name not in table:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(table)}")
    return table[name]


def ingest_function(spec: DatasetSpec) -> Callable[[Ingestor, Path, IngestOptions], dict[str, Any] | None]:
    """The dataset's ingest function (imports its module)."""
    module, _, attr = spec.ingest.partition(":")
    func: Callable[[Ingestor, Path, IngestOptions], dict[str, Any] | None] = getattr(
        importlib.import_module(module), attr
    )
    return func

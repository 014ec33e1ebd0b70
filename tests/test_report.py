"""`timbredb report`: a store filled by the baselines renders every figure and table;
an empty store renders "no data" sections; the published numbers are the released ones.
"""

from __future__ import annotations

import csv
import json
import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.conftest import CLI
from tests.synth import harmonic_tone, write
from timbredb.report import build_report
from timbredb.report.published import Counterparts, compare, load_published
from timbredb.spaces import SpaceRecord
from timbredb.store import Store
from timbredb.vocabularies import CCMUSIC

TM_DATASETS = ("Iverson1993_Onset", "Patil2012_A3")  # the two smallest local timbremetrics studies


class _Page(HTMLParser):
    """Collects img sources, links, tables (rows of cells) and sections with their status."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.tables: list[list[list[str]]] = []
        self.sections: dict[str, str] = {}
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.images.append(a["src"] or "")
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"] or "")
        elif tag == "section":
            self.sections[a["id"] or ""] = a.get("data-status") or ""
        elif tag == "table":
            self.tables.append([])
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None
        elif tag == "tbody":
            self._in_body = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _synthetic_ccmusic(root: Path) -> None:
    """Six harmonic tones; 'bright'-like words rise with the harmonic rolloff's brightness."""
    folder = root / "ccmusic"
    rng = np.random.default_rng(3)
    rows = []
    rolloffs = [0.5, 2.5, 1.0, 3.0, 0.7, 1.8]
    for i, rolloff in enumerate(rolloffs):
        name = f"inst_{i}"
        write(folder / "audio" / f"{name}.wav", harmonic_tone(220.0 * (1 + i % 3), seconds=0.5, rolloff=rolloff))
        brightness = 10.0 - 3.0 * rolloff
        ratings = {d: round(float(rng.uniform(1, 10)), 2) for d in CCMUSIC}
        for d in ("bright", "clear", "sharp"):
            ratings[d] = round(brightness, 2)
        for d in ("dim", "soft", "thick"):
            ratings[d] = round(11.0 - brightness, 2)
        rows.append([name, "chinese" if i < 3 else "western", *[ratings[d] for d in CCMUSIC]])
    with (folder / "ratings.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["instrument", "split", *CCMUSIC])
        w.writerows(rows)


def _data_root(root: Path, real: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "audealize").symlink_to(real / "audealize", target_is_directory=True)
    for name in TM_DATASETS:
        (root / "timbremetrics" / "sounds").mkdir(parents=True, exist_ok=True)
        (root / "timbremetrics" / "true_dissim").mkdir(parents=True, exist_ok=True)
        (root / "timbremetrics" / "sounds" / name).symlink_to(
            real / "timbremetrics" / "sounds" / name, target_is_directory=True)
        matrix = f"{name}_dissimilarity_matrix.txt"
        (root / "timbremetrics" / "true_dissim" / matrix).symlink_to(real / "timbremetrics" / "true_dissim" / matrix)
    _synthetic_ccmusic(root)
    return root


def _study_csv(path: Path) -> Path:
    """Per-condition results in the study's released CSV layout (synthetic numbers).

    Every trajectory rises with strength except the piano's (falls), so the
    expected Table 1 row is known: pos. slope rate 2/3, consistency 0.
    """
    rows = []
    for effect in ("eq", "reverb"):
        for source in ("guitar", "piano", "mixture"):
            for word in ("bright", "warm"):
                orig = 0.1
                for s in (0.2, 0.4, 0.6, 0.8, 1.0):
                    manip = orig + (-0.05 if source == "piano" else 0.05) * s
                    rows.append([effect, source, word, f"a {word} sound", s, orig, manip, manip - orig])
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["effect_type", "source_type", "descriptor", "target_text", "scale", "orig_target_sim",
                    "manip_target_sim", "delta_target_sim"])
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[Path, Path]:
    """(store, data root) with ccmusic, timbremetrics and audealize, baselines only."""
    tmp = tmp_path_factory.mktemp("report")
    root = _data_root(tmp / "data", data_dir)
    cli = CLI(tmp / "store.duckdb", root)
    _listener_files(root / "ccmusic")  # issue 11: noise ceilings
    cli("ingest", "ccmusic", "timbremetrics", "--models", "mfcc,socialfx-eq")
    cli("ingest", "audealize", "--models", "mfcc,socialfx-eq", "--words", "bright,warm",
        "--strengths", "0.5,1.0", "--length-s", "2")
    # results computed elsewhere, filed under a published model's name: compared with the study
    cli("import", "exp2", str(_study_csv(tmp / "laion-clap.csv")), "--model", "laion-clap")
    cli("import", "exp1", str(_release(tmp / "release")))  # issue 11
    return tmp / "store.duckdb", root


def _listener_files(folder: Path) -> None:
    """CCMusic's listener files for the synthetic instruments' Chinese half (issue 11)."""
    from tests.ccmusic_fixture import SynthInstrument, listener_ratings, write_listener_files

    rows = list(csv.reader((folder / "ratings.csv").open(encoding="utf-8")))
    chinese = [SynthInstrument(r[0], r[1], np.zeros(1, np.float32), 0.0, 0.0, dict(zip(rows[0][2:], map(float, r[2:]))))
               for r in rows[1:] if r[1] == "chinese"]
    write_listener_files(folder, chinese, listener_ratings(chinese))


def _release(folder: Path) -> Path:
    """The study release's exp1 layout for the synthetic instruments, two models (issue 11)."""
    from tests.ccmusic_fixture import SynthInstrument, synthetic_release, write_release

    insts = [SynthInstrument(f"inst_{i}", "chinese" if i < 3 else "western", np.zeros(1, np.float32), 0.0, 0.0, {})
             for i in range(6)]
    return write_release(folder, synthetic_release(insts, ("laion-clap", "msclap")),
                         {"laion-clap": "LAION_CLAP", "msclap": "MSCLAP"})


EXPECTED_FIGURES = {"exp1_descriptor_r", "exp1_split_means", "exp1_heatmap_R", "exp1_heatmap_S", "exp3_spearman",
                    "exp2_trajectories", "exp2_slope_heatmap",
                    # issue 11: one section per analysis beyond the study
                    "compare_exp1_forest", "ceiling_ccmusic", "axes_ccmusic", "probe_ccmusic", "prompts_exp1_ccmusic",
                    "prompts_exp2"}


def test_report_on_a_filled_store_has_every_figure_and_table(filled: tuple[Path, Path], tmp_path: Path) -> None:
    db, root = filled
    with Store(db, read_only=True) as store:
        path = build_report(store, tmp_path / "out", data_dir=root, words=("bright", "warm"), effect="eq",
                            n_bootstrap=200, n_permutations=200)
    page = _parse(path)

    assert page.sections["provenance"] == "ok"
    assert page.sections["exp1"] == "ok"
    assert page.sections["exp3"] == "ok"
    assert page.sections["exp2"] == "ok"
    for name in ("compare", "ceiling", "axes", "probe", "prompts"):
        assert page.sections[name] == "ok", name

    # every figure file exists and is referenced, and every reference exists
    figures = {p.stem for p in (path.parent / "figures").glob("*.png")}
    assert figures == EXPECTED_FIGURES
    referenced = {Path(src).stem for src in page.images}
    assert referenced == figures
    for src in page.images:
        f = path.parent / src
        assert f.is_file() and f.stat().st_size > 5_000, src
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for href in page.links:
        if not href.startswith(("http", "#")):
            assert (path.parent / href).is_file(), href

    # every table has rows, and each has its CSV beside the report
    assert len(page.tables) >= 12
    for i, rows in enumerate(page.tables):
        assert rows, f"table {i} has no rows"
        assert rows[0] != ["no rows"], f"table {i} has no rows"
    assert len(list((path.parent / "tables").glob("*.csv"))) == len(page.tables) - 1  # the header k/v table has none

    text = path.read_text(encoding="utf-8")
    assert str(db.resolve()) in text  # provenance: the store
    with Store(db, read_only=True) as store:
        sha = store.frame("SELECT checkpoint_sha256 FROM spaces WHERE model_id = 'socialfx-eq'").item()
    assert sha and sha in text  # provenance: the checkpoint hash of the data-built baseline
    assert "numpy" in text and "cpu" in text  # package versions and device from the batches


def test_local_mfcc_is_compared_with_the_published_timbremetrics_reference(
    filled: tuple[Path, Path], tmp_path: Path
) -> None:
    from timbredb.analysis.exp3 import run_exp3

    db, root = filled
    with Store(db, read_only=True) as store:
        path = build_report(store, tmp_path / "out", data_dir=root, n_bootstrap=0, n_permutations=0)
        local = run_exp3(store, model="mfcc", n_bootstrap=0)["metrics"]
    cmp = pl.read_csv(path.parent / "tables" / "exp3_vs_published.csv")
    row = cmp.filter((pl.col("model") == "mfcc") & (pl.col("distance") == "cosine") & (pl.col("metric") == "spearman"))
    assert row.height == 1
    expected = local.filter((pl.col("dataset") == "all") & (pl.col("distance") == "cosine"))["spearman"][0]
    assert row["local"][0] == pytest.approx(expected)
    assert row["published"][0] == 0.395
    assert row["difference"][0] == pytest.approx(expected - 0.395)
    # socialfx-eq has no published counterpart: it must not be compared
    assert set(cmp["model"].to_list()) == {"mfcc"}


def test_imported_results_named_like_a_published_model_are_compared(
    filled: tuple[Path, Path], tmp_path: Path
) -> None:
    db, root = filled
    with Store(db, read_only=True) as store:
        path = build_report(store, tmp_path / "out", data_dir=root, words=("bright",), effect="eq",
                            n_bootstrap=0, n_permutations=0)
    cmp = pl.read_csv(path.parent / "tables" / "exp2_vs_published.csv")
    assert set(cmp["model"].to_list()) == {"laion-clap"}  # socialfx-eq has no published counterpart
    got = {(r["effect"], r["metric"]): r for r in cmp.iter_rows(named=True)}
    slope = got[("all", "pos_slope_rate")]
    assert slope["local"] == pytest.approx(2 / 3)
    assert slope["published"] == pytest.approx(0.725)
    assert slope["difference"] == pytest.approx(2 / 3 - 0.725)
    assert got[("all", "all_source_consistency")]["local"] == 0.0
    assert got[("eq", "mean_slope")]["published"] == pytest.approx(0.0112435052434)
    assert got[("reverb", "pos_final_delta_rate")]["published"] == pytest.approx(0.916667)
    # the imported model is drawn in the trajectory figure and the slope heat map
    table1 = pl.read_csv(path.parent / "tables" / "exp2_table1.csv")
    assert set(table1["model"].to_list()) == {"laion-clap", "socialfx-eq"}


def test_default_words_fall_back_when_absent(filled: tuple[Path, Path], tmp_path: Path) -> None:
    db, root = filled
    cli = CLI(db, root)
    out = tmp_path / "cli-out"
    result = cli("report", "--out", str(out))  # "haunting"/"deep" (reverb) are not in this store
    path = Path(result.stdout.strip())
    assert path == out / "report.html" and path.is_file()
    assert "not in the store" in path.read_text(encoding="utf-8")
    assert (out / "figures" / "exp2_trajectories.png").is_file()


def test_empty_store_renders_no_data_sections(db: Path, tmp_path: Path) -> None:
    Store(db).close()  # create and migrate an empty store
    with Store(db, read_only=True) as store:
        path = build_report(store, tmp_path / "out")
    page = _parse(path)
    assert page.sections["provenance"] == "ok"
    for name in ("exp1", "exp2", "exp3", "compare", "ceiling", "axes", "probe", "prompts"):
        assert page.sections[name] == "no data", name
    text = path.read_text(encoding="utf-8")
    assert text.count("No data") >= 3
    assert not list((path.parent / "figures").glob("*"))
    assert page.images == []


def test_rerun_replaces_old_figures(tmp_path: Path, db: Path) -> None:
    out = tmp_path / "out"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "stale.png").write_bytes(b"old")
    Store(db).close()
    with Store(db, read_only=True) as store:
        build_report(store, out)
    assert not (out / "figures" / "stale.png").exists()


# ---------------------------------------------------------------- published numbers
def test_published_numbers_are_the_released_ones() -> None:
    pub = load_published()
    sources = pub["sources"]
    for key in ("exp1_descriptors", "exp1_splits", "exp2", "exp3"):
        assert pub[key], key
        for row in pub[key]:
            assert row["source"] in sources
            for v in row.values():
                if isinstance(v, float):
                    assert math.isfinite(v)
    for s in sources.values():
        assert s["url"].startswith("https://github.com/") and len(s["commit"]) == 40 and s["path"]
    desc = {(r["model"], r["descriptor"]): r["pearson_r"] for r in pub["exp1_descriptors"]}
    assert len([k for k in desc if k[0] in ("laion-clap", "ms-clap", "muq-mulan")]) == 48
    assert {d for _, d in desc} == set(CCMUSIC)
    assert desc[("laion-clap", "bright")] == pytest.approx(0.2200861570170527)
    assert desc[("muq-mulan", "vigorous")] == pytest.approx(-0.4830407015088874)
    # instrument-level means as printed in the paper
    for r in pub["exp1_splits"]:
        assert r["mean_pearson_r"] == pytest.approx(r["paper_value"], abs=5e-4)
    paper = {("laion-clap", "chinese"): 0.162, ("laion-clap", "western"): 0.027, ("ms-clap", "chinese"): 0.058,
             ("ms-clap", "western"): 0.053, ("muq-mulan", "chinese"): 0.000, ("muq-mulan", "western"): -0.027}
    assert {(r["model"], r["split"]): r["paper_value"] for r in pub["exp1_splits"]} == paper
    # Table 1
    t1 = {r["model"]: r for r in pub["exp2"] if r["effect"] == "all"}
    expect = {"laion-clap": (72.5, 77.5, 42.5, 0.354, 0.334), "ms-clap": (71.7, 75.8, 42.5, 0.361, 0.347),
              "muq-mulan": (78.3, 64.2, 47.5, 0.535, 0.530)}
    for model, (slope, final, cons, r, rho) in expect.items():
        row = t1[model]
        assert 100 * row["pos_slope_rate"] == pytest.approx(slope, abs=0.05)
        assert 100 * row["pos_final_delta_rate"] == pytest.approx(final, abs=0.05)
        assert 100 * row["all_source_consistency"] == pytest.approx(cons, abs=0.05)
        assert row["mean_pearson_r"] == pytest.approx(r, abs=5e-4)
        assert row["mean_spearman_rho"] == pytest.approx(rho, abs=5e-4)
    ref = next(r for r in pub["exp3"] if r["model"] == "mfcc" and r["distance"] == "cosine")
    assert (ref["spearman"], ref["kendall"], ref["ndcg"], ref["triplet_agreement"], ref["mae"]) == (
        0.395, 0.303, 0.895, 0.696, 0.326)
    json.dumps(pub)  # plain JSON


def _space(label: str, model_id: str, checkpoint: str) -> SpaceRecord:
    return SpaceRecord(label, label, model_id, "CLAP", checkpoint, None, {}, 512, 48000, "cosine", ("audio", "text"))


def test_counterparts_need_the_same_model_and_checkpoint() -> None:
    pub = load_published()
    cp = Counterparts(
        [_space("ms-clap", "ms-clap", "2023"), _space("ms-clap@2022", "ms-clap", "2022"),
         _space("laion-clap", "laion-clap", "630k-audioset-best"), _space("mfcc", "mfcc", "torchaudio-mfcc40"),
         _space("laion-clap@630k-best", "laion-clap", "630k-best"),
         _space("laion-clap/first", "laion-clap", "630k-audioset-best")],
        pub,
    )
    assert cp.of("ms-clap") == "ms-clap"
    assert cp.of("ms-clap@2022") is None  # the study used MS-CLAP 2023
    assert cp.of("laion-clap") == "laion-clap"
    assert cp.of("laion-clap@630k-best") is None  # another checkpoint
    assert cp.of("laion-clap/first") == "laion-clap"  # same checkpoint, other window policy
    assert cp.of("socialfx-eq") is None
    assert cp.of("mfcc") == "mfcc"

    local = pl.DataFrame({"model": ["ms-clap", "ms-clap@2022", "socialfx-eq"], "effect": ["all"] * 3,
                          "pos_slope_rate": [0.8, 0.5, 0.9], "mean_pearson_r": [0.4, 0.1, 0.2]})
    out = compare(local, pl.DataFrame([r for r in pub["exp2"]]), ["effect"],
                  ["pos_slope_rate", "mean_pearson_r"], cp)
    assert out["model"].to_list() == ["ms-clap", "ms-clap"]
    d = dict(zip(out["metric"].to_list(), out["difference"].to_list()))
    assert d["pos_slope_rate"] == pytest.approx(0.8 - 0.7167)
    assert d["mean_pearson_r"] == pytest.approx(0.4 - 0.3608)

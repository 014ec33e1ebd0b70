"""timbremetrics' weight-free features (mfcc, mss; time-averaged and frame-level pairwise) against the
published scripts' PyTorch path (examples/evaluate_mss.py, evaluate_mfcc.py, metrics.py @212c267e)."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.synth import SR, harmonic_tone, noise, write
from timbredb.audio import from_array
from timbredb.errors import AudioError
from timbredb.models import load

torch = pytest.importorskip("torch")
F = pytest.importorskip("torch.nn.functional")

FFT_SIZES = (4096, 2048, 1024, 512, 256, 128)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # the reference's tensors are small: several threads only contend on a shared 2-core machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _torchaudio():
    from timbredb.models._compat import import_torchaudio

    try:
        return import_torchaudio()
    except ImportError as exc:
        pytest.skip(f"torchaudio not importable: {exc}")


# ---------------------------------------------------------------- the published code path, in torch
def torch_mss(audio, time_average: bool):
    """examples/evaluate_mss.py `mss.forward`: torch.stft with only n_fft (rectangular window), |X| and
    log(|X| floored at 1e-5), optionally averaged over frames, flattened and concatenated (lin, then log)."""
    specs, logs = [], []
    for n in FFT_SIZES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch warns that no window means a rectangular one
            mag = torch.abs(torch.stft(audio, n_fft=n, return_complex=True))
        safe = torch.where(mag <= 1e-5, torch.tensor(1e-5, dtype=mag.dtype), mag)
        lg = torch.log(safe)
        if time_average:
            mag, lg = mag.mean(dim=-1), lg.mean(dim=-1)
        specs.append(mag.flatten(start_dim=1))
        logs.append(lg.flatten(start_dim=1))
    return torch.cat([torch.cat(specs, dim=1), torch.cat(logs, dim=1)], dim=1)


@functools.cache
def _mfcc_transform(dtype):
    ta = _torchaudio()
    return ta.transforms.MFCC(sample_rate=44100, melkwargs={"n_fft": 2048, "hop_length": 512}).to(dtype)


def torch_mfcc(audio, time_average: bool):
    """examples/evaluate_mfcc.py: torchaudio MFCC(sample_rate=44100, melkwargs n_fft 2048, hop 512)."""
    x = _mfcc_transform(audio.dtype)(audio)
    return x.mean(dim=-1) if time_average else x


def torch_pair(feature, a: np.ndarray, b: np.ndarray, dtype) -> tuple[float, float]:
    """metrics.py `_extract_dataset_paired_embeddings` + distances.py paired l2 / cosine."""
    ta, tb = torch.from_numpy(a).to(dtype), torch.from_numpy(b).to(dtype)
    n = max(ta.shape[-1], tb.shape[-1])
    ta, tb = F.pad(ta, (0, n - ta.shape[-1])), F.pad(tb, (0, n - tb.shape[-1]))
    ea, eb = feature(ta, False).flatten(), feature(tb, False).flatten()
    return float(1 - F.cosine_similarity(ea, eb, dim=0)), float(torch.norm(ea - eb, p=2))


def _close(mine: np.ndarray, ref: np.ndarray, rel: float = 1e-5) -> None:
    """Element-wise, within ``rel`` of the feature's largest magnitude (tiny bins have no meaningful relative error)."""
    assert mine.shape == ref.shape
    scale = float(np.max(np.abs(ref)))
    np.testing.assert_allclose(mine, ref, rtol=rel, atol=rel * scale)


def _norm_rel(mine: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(mine - ref) / np.linalg.norm(ref))


# ---------------------------------------------------------------- the local datasets
def _studies(real_data_dir: Path) -> list[tuple[str, list[Path]]]:
    from timbredb.datasets.timbremetrics import find_datasets, stimulus_files

    root = real_data_dir / "timbremetrics"
    if not root.is_dir():
        pytest.skip("no timbremetrics data")
    names, sounds, _ = find_datasets(real_data_dir)
    return [(n, stimulus_files(sounds / n)) for n in names]


def _load(path: Path) -> np.ndarray:
    """timbremetrics' loader: soundfile, float32, (channels, samples) as stored, no resampling."""
    pcm, sr = sf.read(str(path), dtype="float32", always_2d=True)
    assert sr == 44100, path
    return np.ascontiguousarray(pcm.T)


def test_the_local_stimuli_are_mono_44k(real_data_dir: Path) -> None:
    # per-clip spaces embed the mono mix; timbremetrics keeps channels: identical only for mono files
    for _, files in _studies(real_data_dir):
        for f in files:
            info = sf.info(str(f))
            assert (info.channels, info.samplerate) == (1, 44100), f


def test_time_averaged_features_equal_the_published_torch_path_on_every_local_stimulus(real_data_dir: Path) -> None:
    mss, mfcc = load("mss"), load("mfcc")
    n = 0
    for _, files in _studies(real_data_dir):
        for k, f in enumerate(files):
            x = _load(f)
            clip = from_array(x.T, 44100, str(f))
            for model, feature in ((mss, torch_mss), (mfcc, torch_mfcc)):
                mine = model.embed_audio([clip])[0].astype(np.float64)
                _close(mine, feature(torch.from_numpy(x).double(), True).numpy()[0])
                if k == 0:
                    # the published run is float32: its own rounding is of the order of 1e-5
                    assert _norm_rel(mine, feature(torch.from_numpy(x), True).numpy()[0]) < 1e-4
            n += 1
    assert n >= 141 and mss.dim == 8076


@pytest.mark.parametrize("model_id,feature", [("mfcc-frames", torch_mfcc), ("mss-frames", torch_mss)])
def test_pairwise_distances_equal_the_published_torch_path_on_local_pairs(
    real_data_dir: Path, model_id: str, feature
) -> None:
    model = load(model_id)
    checked = 0
    for _, files in _studies(real_data_dir):
        audio = [_load(f) for f in files]
        # the first stimulus with every other, plus the pair with the largest length difference
        lengths = [a.shape[-1] for a in audio]
        pairs = [(0, j) for j in range(1, len(audio))] + [(int(np.argmin(lengths)), int(np.argmax(lengths)))]
        for i, j in pairs:
            if i == j:
                continue
            cos, l2, n = model.distances(audio[i], audio[j])
            ref_cos, ref_l2 = torch_pair(feature, audio[i], audio[j], torch.float64)
            assert n == max(lengths[i], lengths[j])
            assert l2 == pytest.approx(ref_l2, rel=1e-5)
            assert cos == pytest.approx(ref_cos, rel=1e-5, abs=1e-9)
            checked += 1
    assert checked >= 132


# ---------------------------------------------------------------- padding and channels (synthetic)
def test_the_shorter_audio_is_zero_padded_before_featurising() -> None:
    model = load("mss-frames")
    a = harmonic_tone(220, 0.2)[:5000][None, :]
    b = noise(0.3, seed=4)[:9000][None, :]
    cos, l2, n = model.distances(a, b)
    assert n == 9000
    padded = np.pad(a, ((0, 0), (0, 4000)))
    ref_cos, ref_l2 = torch_pair(torch_mss, padded, b, torch.float64)  # already equal lengths: no padding
    assert (cos, l2) == (pytest.approx(ref_cos, rel=1e-9), pytest.approx(ref_l2, rel=1e-9))
    # padding the features instead (zeros after the short clip's own frames) would differ: reflect padding
    # and the frames around the boundary see the appended zeros
    own = np.concatenate([m.ravel() for m in load("mss-frames")._blocks(a.astype(np.float64))])  # type: ignore[attr-defined]
    assert own.size < torch_mss(torch.from_numpy(padded).double(), False).numel()
    # the order of the pair does not matter, and a clip is at distance 0 from itself
    assert model.distances(a, b) == model.distances(b, a)[:2] + (9000,)
    assert model.distances(b, b)[:2] == (pytest.approx(0.0, abs=1e-12), 0.0)
    # many pairs at once give the same numbers as one by one
    clips = {"a": a, "b": b, "c": b[:, :7000] * 0.3}
    many = model.pair_distances(clips, [("a", "b"), ("c", "a"), ("b", "c")])
    assert many == [model.distances(a, b), model.distances(clips["c"], a), model.distances(b, clips["c"])]


def test_stereo_pairs_keep_their_channels_and_share_one_top_db_floor() -> None:
    model = load("mfcc-frames")
    left, right = harmonic_tone(330, 0.4), 0.001 * noise(0.4, seed=9)  # a very quiet channel
    a = np.stack([left, right])
    b = np.stack([noise(0.3, seed=1), harmonic_tone(110, 0.3)])
    cos, l2, _ = model.distances(a, b)
    ref_cos, ref_l2 = torch_pair(torch_mfcc, a, b, torch.float64)
    assert l2 == pytest.approx(ref_l2, rel=1e-5) and cos == pytest.approx(ref_cos, rel=1e-5)
    with pytest.raises(AudioError, match="channels"):
        model.distances(a, b[:1])


def test_pairwise_models_are_spaces_without_vectors() -> None:
    model = load("mfcc-frames")
    rec = model.space_record()
    assert rec.comparison == "pairwise" and rec.pairwise and rec.dim == 0 and rec.modalities == ("audio",)
    assert "pairs" in rec.policy and rec.policy["channels"].startswith("as loaded")
    assert load("mss").space_record().comparison == "vector"
    with pytest.raises(Exception, match="pair by pair"):
        model.embed_audio([from_array(noise(0.2), SR, "x")])


# ---------------------------------------------------------------- the store and exp3
def _two_studies(tmp_path: Path, real_data_dir: Path) -> Path:
    src = real_data_dir / "timbremetrics"
    if not src.is_dir():
        pytest.skip("no timbremetrics data")
    root = tmp_path / "tm"
    for name in ("Iverson1993_Onset", "Patil2012_A3"):
        (root / "sounds").mkdir(parents=True, exist_ok=True)
        (root / "true_dissim").mkdir(exist_ok=True)
        (root / "sounds" / name).symlink_to(src / "sounds" / name, target_is_directory=True)
        m = f"{name}_dissimilarity_matrix.txt"
        (root / "true_dissim" / m).symlink_to(src / "true_dissim" / m)
    return root


def test_ingest_stores_every_pair_once_and_exp3_reads_them(tmp_path: Path, real_data_dir: Path) -> None:
    from tests.conftest import CLI
    from timbredb.analysis.exp3 import distance_scores, run_exp3, summarise
    from timbredb.datasets.timbremetrics import read_matrix, stimulus_files
    from timbredb.store import Store

    folder = _two_studies(tmp_path, real_data_dir)
    db = tmp_path / "s.duckdb"
    cli = CLI(db, tmp_path / "no-data")
    out = cli("ingest", "timbremetrics", "--timbremetrics-dir", folder, "--models", "mfcc-frames,mss", "--format", "json")
    import json

    summary = json.loads(out.stdout)
    assert summary["pair_distances_added"] == 120 + 55 and not summary["errors"]
    assert summary["datasets"]["timbremetrics"]["datasets"] == ["Iverson1993_Onset", "Patil2012_A3"]
    again = json.loads(cli("ingest", "timbremetrics", "--timbremetrics-dir", folder, "--models", "mfcc-frames",
                           "--format", "json").stdout)
    assert again["pair_distances_added"] == 0  # keyed by both clips' hashes: nothing is recomputed

    model = load("mfcc-frames")
    with Store(db, read_only=True) as store:
        (space,) = store.spaces("mfcc-frames")
        assert space.pairwise and store.count_pairs(space.space_id) == 175
        res = run_exp3(store, model="mfcc-frames", n_bootstrap=0)["metrics"]
    studies = {}
    for name in ("Iverson1993_Onset", "Patil2012_A3"):
        audio = [_load(f) for f in stimulus_files(folder / "sounds" / name)]
        n = len(audio)
        mats = {d: np.zeros((n, n)) for d in ("cosine", "l2")}
        for i in range(n):
            for j in range(i + 1, n):
                c, d = torch_pair(torch_mfcc, audio[i], audio[j], torch.float32)  # the published float32 run
                mats["cosine"][i, j], mats["l2"][i, j] = c, d
        human = read_matrix(folder / "true_dissim" / f"{name}_dissimilarity_matrix.txt")
        studies[name] = {d: distance_scores(m, human) for d, m in mats.items()}
    for distance in ("cosine", "l2"):
        expected = summarise("mfcc-frames", distance, {k: v[distance] for k, v in studies.items()}, n_bootstrap=0)
        got = res.filter(res["distance"] == distance).to_dicts()
        for e, g in zip(expected, got):
            assert e["dataset"] == g["dataset"]
            for m in ("spearman", "kendall", "ndcg", "triplet_agreement", "mae"):
                assert g[m] == pytest.approx(e[m], abs=2e-4), (distance, e["dataset"], m)
    assert model.label == "mfcc-frames"

    # SQL users see the pairwise space in dissimilarity_pairs like any other
    sql = json.loads(cli("sql", "SELECT model, count(*) AS n, bool_and(complete) AS c FROM dissimilarity_pairs "
                                "GROUP BY model ORDER BY model", "--format", "json").stdout)
    assert sql == [{"model": "mfcc-frames", "n": 175, "c": True}, {"model": "mss", "n": 175, "c": True}]


def test_a_pair_that_cannot_be_compared_is_one_error(tmp_path: Path) -> None:
    from tests.conftest import CLI

    root = tmp_path / "tm"
    sounds = root / "sounds" / "Mixed"
    write(sounds / "a.wav", harmonic_tone(220, 0.3))
    write(sounds / "b.wav", noise(0.3, seed=2))
    write(sounds / "c.wav", np.stack([noise(0.3, seed=3), noise(0.3, seed=4)], axis=1))
    (root / "true_dissim").mkdir(parents=True)
    (root / "true_dissim" / "Mixed_dissimilarity_matrix.txt").write_text("0 1 2\n0 0 3\n0 0 0\n")
    import json

    out = CLI(tmp_path / "s.duckdb", tmp_path)("ingest", "timbremetrics", "--timbremetrics-dir", root,
                                               "--models", "mfcc-frames", "--format", "json")
    summary = json.loads(out.stdout)
    assert summary["pair_distances_added"] == 1  # a-b; c is stereo, a and b are mono
    assert len(summary["errors"]) == 2 and all("channels" in e["error"] for e in summary["errors"])


def test_describe_clips_in_audio_only_and_pairwise_spaces(tmp_path: Path, real_data_dir: Path) -> None:
    import json

    from tests.conftest import CLI
    from timbredb.store import Store

    folder = _two_studies(tmp_path, real_data_dir)
    db = tmp_path / "s.duckdb"
    cli = CLI(db, tmp_path / "no-data")
    cli("ingest", "timbremetrics", "--timbremetrics-dir", folder, "--models", "mfcc-frames,mss")
    query = sorted((folder / "sounds" / "Patil2012_A3").iterdir())[0]
    out = json.loads(cli("describe", query, "--model", "mfcc-frames", "--clips", "4", "--format", "json").stdout)
    (desc,) = out
    assert desc["descriptors"] == [] and len(desc["similar_clips"]) == 4
    with Store(db, read_only=True) as store:
        (space,) = store.spaces("mfcc-frames")
        me = from_array(_load(query).T, 44100, "q").sha256
        others = [h for h in store.pair_clips(space.space_id) if h != me]
        stored = store.pair_distances(space.space_id, [(me, h) for h in others])
    # the query is a stored stimulus: its scores are 1 - the stored cosine distances, best first, itself excluded
    expected = sorted(((h, 1 - stored[tuple(sorted((me, h)))][0]) for h in others if tuple(sorted((me, h))) in stored),
                      key=lambda t: -t[1])[:4]
    assert [c["clip_sha256"] for c in desc["similar_clips"]] == [h for h, _ in expected]
    assert [c["score"] for c in desc["similar_clips"]] == pytest.approx([s for _, s in expected], rel=1e-9)
    # a time-averaged audio-only space uses its FAISS index
    mss = json.loads(cli("describe", query, "--model", "mss", "--clips", "2", "--format", "json").stdout)[0]
    assert len(mss["similar_clips"]) == 2 and mss["similar_clips"][0]["score"] <= 1.0
    # without --clips an audio-only model has nothing to say: one clear line
    bad = cli("describe", query, "--model", "mss", ok=False)
    assert bad.exit_code == 1 and "--clips" in bad.stderr and bad.stderr.count("\n") == 1


def test_selected_by_default_the_timbremetrics_baselines_embed_only_its_stimuli(
    tmp_path: Path, synth_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import db_rows
    from timbredb.ingest import IngestOptions, run_ingest
    from timbredb.ingest import run as run_module

    monkeypatch.setattr(run_module, "usable_models", lambda data_dir: ["mfcc", "mss", "mfcc-frames"])
    db = tmp_path / "s.duckdb"
    opts = IngestOptions(words="eq:bright", strengths="1.0", length_s=0.5)
    summary = run_ingest(db, synth_data_dir, ["timbremetrics", "audealize"], opts)
    assert not summary.errors
    n_stimuli = db_rows(db, "SELECT count(DISTINCT clip_sha256) FROM dissimilarity_stimuli")[0][0]
    counts = dict(db_rows(db, "SELECT s.label, count(*) FROM audio_embeddings JOIN spaces s USING (space_id) GROUP BY 1"))
    assert counts["mss"] == n_stimuli and counts["mfcc"] > n_stimuli  # mfcc also embedded the exp2 variants
    assert db_rows(db, "SELECT count(*) FROM pair_distances")[0][0] > 0
    # named in --models, mss embeds everything it is given
    run_ingest(db, synth_data_dir, ["audealize"], IngestOptions(models=["mss"], words="eq:bright", strengths="1.0",
                                                                length_s=0.5))
    counts = dict(db_rows(db, "SELECT s.label, count(*) FROM audio_embeddings JOIN spaces s USING (space_id) GROUP BY 1"))
    assert counts["mss"] == counts["mfcc"]

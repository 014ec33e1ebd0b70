"""Build a Hugging Face cache holding random-weight stand-ins of the real models.

Every repository the model packages read is written in the hub cache layout
(``models--org--name/refs/main`` + ``snapshots/<commit>/...``): tiny text
encoders (1 layer, small vocabularies) with synthetic tokenizers (byte-level
BPE vocab.json + merges.txt for GPT-2/RoBERTa/BART, vocab.txt for BERT, a
tokenizers-library tokenizer.json for XLM-R), and the checkpoints in each
package's own format, built by the packages' own classes so their keys and
shapes are what the packages expect. With ``HF_HUB_OFFLINE=1`` and
``HF_HUB_CACHE`` pointing at the cache, the packages' loading code runs unchanged.

The audio encoders keep their real sizes (the packages hard-code them), so a
LAION-CLAP stand-in is a full-size HTSAT-tiny; ``full_size=True`` also makes the
RoBERTa text encoder full size (for the benchmark).

The checkpoints carry the structure of the published files, not only their keys:
LAION-CLAP's training-script wrapper (``epoch``, ``name``, ``state_dict`` with
``module.`` keys and the ``text_branch.embeddings.position_ids`` buffer, and an
``optimizer`` whose cosine schedule stored numpy floats, so the file only loads
with ``weights_only=False``); MS-CLAP's ``{"model": state_dict}`` with the
derived buffers and the GPT-2 ``attn.bias``/``attn.masked_bias`` extras older
transformers saved; MuQ-MuLan as an old cache holds it, ``pytorch_model.bin``
beside a ``model.safetensors`` whose ``pos_conv_embed`` weights carry the old
``weight_g``/``weight_v`` names. ``variant`` derives other caches from it (a
MuQ-MuLan repo with the .bin only, MS-CLAP without the derived buffers, ...).

The stand-ins are built through the packages' own hub loaders, so building
and using the cache happen inside ``pointed_at(root)``, which points
huggingface_hub and transformers at it (both read HF_HUB_CACHE / HF_HUB_OFFLINE
only at import, so their module settings are switched too) and restores them.
It also swaps the registry's checkpoint pins for the stand-ins' own revision and
sha256 (recorded in ``timbredb-fake-pins.json`` at build time), so the digest
check runs for real against this cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

CORPUS = (
    "a warm sound a bright sound a dark sound a rough sound a soft sound a harsh sound "
    "an echo sound a mellow tone the bright and warm piano clear crisp tinny deep hollow "
    "muffled spacious distant heavy smooth calm gentle sharp hard loud cold cool sad big "
    "church hall bass strong low haunting distorted peaceful soothing thin thick pure dim "
    "dry plump turbid vigorous slim coarse hoarse harmonious guitar violin drums sound sounds"
)
WORDS = sorted(set(CORPUS.split()))
#: words the XLM-R stand-in does not know as one piece, so they tokenize longer than the others:
#: the study's text lists then mix token lengths, as with the real tokenizer (batch dependence shows)
XLMR_SPLIT = frozenset({"harmonious", "vigorous", "turbid", "haunting", "spacious", "distorted"})
PINS_FILE = "timbredb-fake-pins.json"


# ---------------------------------------------------------------- hub cache layout
def commit_for(repo_id: str) -> str:
    return hashlib.sha1(f"timbredb-fake/{repo_id}".encode()).hexdigest()


def snapshot(root: Path, repo_id: str) -> Path:
    """The snapshot folder of a repo (created, with refs/main pointing at it)."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    commit = commit_for(repo_id)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    return snap


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1))


# ---------------------------------------------------------------- tokenizers
def bytes_to_unicode() -> dict[int, str]:
    """The byte-level BPE alphabet: printable bytes map to themselves, the rest above 255.

    In GPT-2's order (printable bytes first), so "!" gets token id 0 as in the real vocabulary.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def learn_merges(words: Iterable[str], n_merges: int) -> list[tuple[str, str]]:
    """Greedy byte-level BPE on a word list (space-prefixed words as GPT-2 sees them)."""
    enc = bytes_to_unicode()
    seqs = [[enc[b] for b in (" " + w).encode()] for w in words]
    merges: list[tuple[str, str]] = []
    for _ in range(n_merges):
        pairs: Counter[tuple[str, str]] = Counter()
        for s in seqs:
            pairs.update(zip(s, s[1:], strict=False))
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        merges.append(best)
        merged = best[0] + best[1]
        new = []
        for s in seqs:
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(merged)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            new.append(out)
        seqs = new
    return merges


def write_bpe_tokenizer(snap: Path, style: str) -> int:
    """vocab.json + merges.txt in GPT-2 ("gpt2") or RoBERTa/BART ("roberta") layout.

    Returns:
        the vocabulary size.
    """
    prefix = [] if style == "gpt2" else ["<s>", "<pad>", "</s>", "<unk>"]
    merges = learn_merges(WORDS, 120)
    tokens = prefix + list(bytes_to_unicode().values()) + [a + b for a, b in merges]
    tokens += ["<|endoftext|>"] if style == "gpt2" else ["<mask>"]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    write_json(snap / "vocab.json", vocab)
    (snap / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return len(vocab)


def write_bert_vocab(snap: Path) -> int:
    chars = sorted(set("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-:;()\"/&"))
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *[f"##{c}" for c in chars], *WORDS]
    tokens = list(dict.fromkeys(tokens))
    (snap / "vocab.txt").write_text("\n".join(tokens) + "\n")
    write_json(snap / "tokenizer_config.json", {"do_lower_case": True, "model_max_length": 512})
    return len(tokens)


def write_xlmr_tokenizer(snap: Path) -> int:
    """A SentencePiece-style Unigram tokenizer.json, ids laid out as XLM-R's."""
    from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import Unigram

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    chars = sorted(set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'-:;()\"/&"))
    pieces = [(s, 0.0) for s in specials]
    pieces += [("▁" + w, -2.0 - len(w) / 10) for w in WORDS if w not in XLMR_SPLIT]
    pieces += [("▁", -3.0)] + [(c, -6.0) for c in chars] + [("▁" + c, -5.0) for c in chars]
    pieces += [("<mask>", 0.0)]
    tok = Tokenizer(Unigram(pieces, unk_id=3, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tok.add_special_tokens([AddedToken(t, special=True) for t in [*specials, "<mask>"]])
    tok.save(str(snap / "tokenizer.json"))
    write_json(
        snap / "tokenizer_config.json",
        {
            "tokenizer_class": "XLMRobertaTokenizer",
            "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
            "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>", "model_max_length": 512,
        },
    )
    return len(pieces)


# ---------------------------------------------------------------- text encoders
def _save_transformer(model: Any, snap: Path) -> None:
    model.save_pretrained(str(snap), safe_serialization=True)


def build_text_repos(root: Path, full_size: bool = False) -> None:
    """roberta-base, bert-base-uncased (tokenizer), facebook/bart-base (tokenizer), gpt2, xlm-roberta-base."""
    import torch
    from transformers import GPT2Config, GPT2Model, RobertaConfig, RobertaModel, XLMRobertaConfig, XLMRobertaModel

    torch.manual_seed(0)
    snap = snapshot(root, "roberta-base")
    n = write_bpe_tokenizer(snap, "roberta")
    if full_size:
        cfg = RobertaConfig(vocab_size=max(n, 50265), max_position_embeddings=514, type_vocab_size=1,
                            pad_token_id=1, bos_token_id=0, eos_token_id=2)
    else:
        # hidden size 768 is hard-coded in laion_clap's text projection
        cfg = RobertaConfig(vocab_size=n, hidden_size=768, num_hidden_layers=1, num_attention_heads=12,
                            intermediate_size=256, max_position_embeddings=130, type_vocab_size=1,
                            pad_token_id=1, bos_token_id=0, eos_token_id=2)
    _save_transformer(RobertaModel(cfg, add_pooling_layer=True), snap)

    snap = snapshot(root, "facebook/bart-base")
    write_bpe_tokenizer(snap, "roberta")
    write_json(snap / "config.json", {"model_type": "bart", "vocab_size": 400})

    snap = snapshot(root, "bert-base-uncased")
    write_bert_vocab(snap)

    snap = snapshot(root, "gpt2")
    n = write_bpe_tokenizer(snap, "gpt2")
    # msclap projects 768-d GPT-2 states and pads to 77 tokens
    cfg = GPT2Config(vocab_size=n, n_embd=768, n_layer=1, n_head=12, n_inner=256, n_positions=128,
                     bos_token_id=n - 1, eos_token_id=n - 1)
    _save_transformer(GPT2Model(cfg), snap)

    snap = snapshot(root, "xlm-roberta-base")
    n = write_xlmr_tokenizer(snap)
    cfg = XLMRobertaConfig(vocab_size=n, hidden_size=64, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=128, max_position_embeddings=130, type_vocab_size=1,
                           pad_token_id=1, bos_token_id=0, eos_token_id=2)
    _save_transformer(XLMRobertaModel(cfg, add_pooling_layer=True), snap)


def build_bert_model(root: Path) -> None:
    """bert-base-uncased weights (only msclap 2022 needs them)."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(1)
    snap = snapshot(root, "bert-base-uncased")
    n = write_bert_vocab(snap)
    cfg = BertConfig(vocab_size=n, hidden_size=768, num_hidden_layers=1, num_attention_heads=12,
                     intermediate_size=256, max_position_embeddings=128)
    _save_transformer(BertModel(cfg), snap)


# ---------------------------------------------------------------- package checkpoints
def build_laion(root: Path, names: Iterable[str] = ("630k-audioset-best",)) -> dict[str, Path]:
    """LAION-CLAP checkpoints as the training script saves them ("state_dict", "module." keys)."""
    import torch

    from timbredb.models import _compat
    from timbredb.models.laion_clap import CHECKPOINTS, REPO

    _compat.ensure_torch_extras()
    import laion_clap

    out = {}
    snap = snapshot(root, REPO)
    for name in names:
        amodel, fusion = CHECKPOINTS[name]
        torch.manual_seed(2)
        with _compat.contained():
            module = laion_clap.CLAP_Module(enable_fusion=fusion, device="cpu", amodel=amodel, tmodel="roberta")
        state = {"module." + k: v for k, v in module.model.state_dict().items()}
        # older transformers stored this buffer; the published checkpoints carry it
        state["module.text_branch.embeddings.position_ids"] = torch.arange(130).unsqueeze(0)
        path = snap / f"{name}.pt"
        torch.save(training_checkpoint(state, n_params=len(list(module.model.parameters()))), path)
        record_pin(root, REPO, path)
        out[name] = path
    return out


def training_checkpoint(state: dict[str, Any], n_params: int) -> dict[str, Any]:
    """The dict LAION-CLAP's training script saves (training/main.py): epoch, run name, the DDP
    state dict, the optimizer's state and the AMP scaler's. Its cosine schedule assigns numpy
    floats to the learning rate (training/scheduler.py: ``np.cos``), so the optimizer state holds
    numpy scalars and ``torch.load(weights_only=True)`` refuses the file."""
    import numpy as np

    lr = np.float64(0.5 * (1 + np.cos(np.pi * 0.3)) * 1e-4)
    group = {"lr": lr, "initial_lr": 1e-4, "betas": (0.9, 0.99), "eps": 1e-9, "weight_decay": 0.0,
             "amsgrad": False, "params": list(range(n_params))}
    return {
        "epoch": 45,
        "name": "2022_12_09-03_40_33-model_HTSAT-tiny-lr_0.0001-b_96-j_6-p_fp32",
        "state_dict": state,
        "optimizer": {"state": {}, "param_groups": [group]},
        "scaler": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
                   "_growth_tracker": 0},
    }


def build_msclap(root: Path, version: str = "2023") -> Path:
    """msclap checkpoint ({"model": state_dict}) built from the package's own config file."""
    import torch
    import yaml

    from timbredb.models import _compat

    _compat.ensure_torch_extras()
    with _compat.contained():
        import msclap  # noqa: F401 - registers the package path for the config file
        from msclap.models.clap import CLAP

        cfg = yaml.safe_load((Path(msclap.__file__).parent / "configs" / f"config_{version}.yml").read_text())
        torch.manual_seed(3)
        clap = CLAP(
            audioenc_name=cfg["audioenc_name"], sample_rate=cfg["sampling_rate"], window_size=cfg["window_size"],
            hop_size=cfg["hop_size"], mel_bins=cfg["mel_bins"], fmin=cfg["fmin"], fmax=cfg["fmax"],
            classes_num=cfg["num_classes"], out_emb=cfg["out_emb"], text_model=cfg["text_model"],
            transformer_embed_dim=cfg["transformer_embed_dim"], d_proj=cfg["d_proj"],
        )
    state = clap.state_dict()
    if cfg["text_model"] == "gpt2":
        # transformers < 4.3x saved GPT-2's causal mask buffers; today they are non-persistent
        n_pos = clap.caption_encoder.base.config.n_positions
        for i in range(clap.caption_encoder.base.config.n_layer):
            state[f"caption_encoder.base.h.{i}.attn.bias"] = torch.tril(torch.ones(n_pos, n_pos, dtype=torch.bool))[
                None, None]
            state[f"caption_encoder.base.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    path = snapshot(root, "microsoft/msclap") / f"CLAP_weights_{version}.pth"
    torch.save({"model": state}, path)
    record_pin(root, "microsoft/msclap", path)
    return path


#: what ms_clap.DERIVED_BUFFERS leaves out of the key check (the package recomputes them)
MSCLAP_DERIVED = ("relative_position_index", "attn_mask")


def msclap_without_derived_buffers(base: Path, dest: Path, version: str = "2023") -> Path:
    """A cache like ``base`` whose MS-CLAP checkpoint lacks the buffers msclap derives from its config."""
    import torch

    src = base / "models--microsoft--msclap" / "snapshots" / commit_for("microsoft/msclap") / f"CLAP_weights_{version}.pth"
    state = torch.load(src, map_location="cpu", weights_only=True)["model"]
    kept = {k: v for k, v in state.items() if k.rsplit(".", 1)[-1] not in MSCLAP_DERIVED}
    assert len(kept) < len(state)
    snap = variant(base, dest, "microsoft/msclap", {})
    path = snap / f"CLAP_weights_{version}.pth"
    torch.save({"model": kept}, path)
    record_pin(dest, "microsoft/msclap", path, commit=snap.name)
    return path


MUQ_CONFIG: dict[str, Any] = {
    "label_rate": 25, "num_codebooks": 1, "codebook_dim": 16, "codebook_size": 64,
    "features": ["melspec_2048"], "hop_length": 240, "n_mels": 128, "conv_dim": 8,
    "encoder_dim": 64, "encoder_depth": 1, "mask_hop": 0.4, "mask_prob": 0.6, "is_flash": False,
    "stat": {"melspec_2048_cnt": 14282760192, "melspec_2048_mean": 6.768444971712967,
             "melspec_2048_std": 18.417922652295623},
    "use_rvq_target": False, "use_vq_target": False, "use_encodec_target": False, "rvq_ckpt_path": None,
    "recon_loss_ratio": None, "resume_checkpoint": None, "rvq_n_codebooks": 8, "rvq_multi_layer_num": 1,
}

MULAN_CONFIG: dict[str, Any] = {
    "mulan": {"sr": 24000, "clip_secs": 10, "dim_latent": 512, "decoupled_contrastive_learning": True,
              "hierarchical_contrastive_loss": False, "hierarchical_contrastive_loss_layers": None,
              "sigmoid_contrastive_loss": False, "rank_contrast": True},
    "audio_model": {"name": "OpenMuQ/MuQ-large-msd-iter", "model_dim": 64, "use_layer_idx": -1},
    "text_model": {"name": "xlm-roberta-base", "model_dim": 64},
    "audio_transformer": {"dim": 64, "tf_depth": 1, "heads": 2, "dim_head": 32, "attn_dropout": 0.1,
                          "ff_dropout": 0.1, "ff_mult": 2},
    "text_transformer": {"dim": 64, "tf_depth": 1, "max_seq_len": 128, "dim_head": 32, "heads": 2,
                         "attn_dropout": 0.1, "ff_dropout": 0.1, "ff_mult": 2},
}


def build_muq(root: Path) -> Path:
    """OpenMuQ/MuQ-large-msd-iter (safetensors) and OpenMuQ/MuQ-MuLan-large (pytorch_model.bin)."""
    import torch
    from safetensors.torch import save_file, save_model
    from transformers import Wav2Vec2ConformerConfig

    from timbredb.models import _compat

    _compat.ensure_torch_extras()
    with _compat.contained(), _compat.offline():
        from muq import MuQ, MuQMuLan

        w2v2 = Wav2Vec2ConformerConfig(
            hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=128,
            conv_depthwise_kernel_size=7, position_embeddings_type="rotary",
        ).to_dict()
        # through JSON, as from config.json (label maps get string keys)
        muq_cfg = json.loads(json.dumps(dict(MUQ_CONFIG, w2v2_config=w2v2)))
        torch.manual_seed(4)
        snap = snapshot(root, "OpenMuQ/MuQ-large-msd-iter")
        write_json(snap / "config.json", muq_cfg)
        save_model(MuQ(muq_cfg), str(snap / "model.safetensors"))

        torch.manual_seed(5)
        mulan = MuQMuLan(json.loads(json.dumps(MULAN_CONFIG)))
        snap = snapshot(root, "OpenMuQ/MuQ-MuLan-large")
        write_json(snap / "config.json", MULAN_CONFIG)
        path = snap / "pytorch_model.bin"
        state = mulan.state_dict()
        torch.save(state, path)
        # the withdrawn safetensors file of an old cache: weight_norm's pre-parametrization names
        save_file(legacy_weight_norm_names(state), str(snap / "model.safetensors"))
    return path


def legacy_weight_norm_names(state: dict[str, Any]) -> dict[str, Any]:
    """``….parametrizations.weight.original0/1`` -> ``….weight_g/weight_v`` (contiguous copies)."""
    old = {"parametrizations.weight.original0": "weight_g", "parametrizations.weight.original1": "weight_v"}
    out = {}
    for key, value in state.items():
        for new, legacy in old.items():
            if key.endswith(new):
                key = key[: -len(new)] + legacy
        out[key] = value.detach().clone().contiguous()
    return out


def muq_variant(base: Path, dest: Path, files: tuple[str, ...]) -> Path:
    """A cache like ``base`` whose MuQ-MuLan repo holds only ``files`` (plus config.json)."""
    repo = "OpenMuQ/MuQ-MuLan-large"
    src = base / ("models--" + repo.replace("/", "--")) / "snapshots" / commit_for(repo)
    return variant(base, dest, repo, {name: src / name for name in ("config.json", *files)})


def build_openflam(root: Path) -> Path:
    """kechenadobe/OpenFLAM v1-base checkpoint (~300 MB), only where `openflam` is installed."""
    import torch

    from timbredb.models import _compat

    _compat.ensure_torch_extras()
    with _compat.contained(), _compat.offline():
        import lightning
        from openflam.module.model import FLAM, CLAPAudioCfg, CLAPTextCfg

        torch.manual_seed(6)
        flam = FLAM(audio_cfg=CLAPAudioCfg(model_name="base", audio_embed_dim=1024),
                    text_cfg=CLAPTextCfg(connector_layers=12), joint_embed_shape=512,
                    fabric=lightning.Fabric(), cache_dir=str(root))
    path = snapshot(root, "kechenadobe/OpenFLAM") / "open_flam_oct17.pth"
    torch.save(flam.state_dict(), path)
    return path


# ---------------------------------------------------------------- derived caches and pins
def variant(base: Path, dest: Path, repo_id: str, files: dict[str, Path]) -> Path:
    """A cache at ``dest`` sharing ``base``'s repositories (symlinked) except ``repo_id``, which
    gets a new snapshot (its own commit) holding ``files`` (name -> file to link). Returns the
    snapshot folder, for writing further files into it."""
    dest.mkdir(parents=True, exist_ok=True)
    name = "models--" + repo_id.replace("/", "--")
    for repo in base.iterdir():
        if repo.name.startswith("models--") and repo.name != name:
            (dest / repo.name).symlink_to(repo)
    commit = hashlib.sha1(f"timbredb-fake/{repo_id}@{dest.name}".encode()).hexdigest()
    (dest / name / "refs").mkdir(parents=True)
    (dest / name / "refs" / "main").write_text(commit)
    snap = dest / name / "snapshots" / commit
    snap.mkdir(parents=True)
    for filename, target in files.items():
        (snap / filename).symlink_to(target)
    pins = json.loads((base / PINS_FILE).read_text()) if (base / PINS_FILE).is_file() else {}
    pins = {k: v for k, v in pins.items() if not k.startswith(repo_id + "/")}
    write_json(dest / PINS_FILE, pins)
    for filename, target in files.items():
        record_pin(dest, repo_id, snap / filename, commit=commit)
    return snap


def record_pin(root: Path, repo_id: str, path: Path, commit: str | None = None) -> None:
    """Note a stand-in weights file's revision and sha256 as its pin (applied when the registry
    pins that file; tokenizers and configs are ignored there)."""
    from timbredb.models import hub

    if path.suffix not in (".pt", ".pth", ".bin", ".safetensors"):
        return
    manifest = root / PINS_FILE
    pins = json.loads(manifest.read_text()) if manifest.is_file() else {}
    pins[f"{repo_id}/{path.name}"] = [commit or commit_for(repo_id), hub.sha256(path)]
    write_json(manifest, pins)
    _apply_pins(root)


#: per active ``pointed_at``: (pins dict, key, pin it replaced), restored on exit
_PIN_PATCHES: list[list[tuple[dict[str, Any], str, Any]]] = []


def _apply_pins(root: Path) -> None:
    """Replace the registry's real pins by the stand-ins' (see module doc)."""
    from dataclasses import replace

    from timbredb.models.registry import SPECS

    if not _PIN_PATCHES:
        return
    manifest = root / PINS_FILE
    data = json.loads(manifest.read_text()) if manifest.is_file() else {}
    for spec in SPECS:
        for key, (commit, digest) in data.items():
            if key in spec.pins:
                _PIN_PATCHES[-1].append((spec.pins, key, spec.pins[key]))
                spec.pins[key] = replace(spec.pins[key], revision=commit, sha256=digest, size_bytes=None,
                                         source="the test hub's stand-in")


@contextlib.contextmanager
def pointed_at(root: Path, hash_cache: Path | None = None) -> Iterator[Path]:
    """Point huggingface_hub, transformers and timbredb at ``root``, offline, with the stand-ins'
    pins; restore after."""
    import huggingface_hub.constants as hf_constants
    import transformers.utils.hub as tf_hub

    env = {"HF_HUB_CACHE": str(root), "HF_HUB_OFFLINE": "1"}
    if hash_cache is not None:
        env["TIMBREDB_CACHE_DIR"] = str(hash_cache)
    saved_env = {k: os.environ.get(k) for k in env}
    saved_attrs = [
        (hf_constants, "HF_HUB_CACHE", hf_constants.HF_HUB_CACHE),
        (hf_constants, "HF_HUB_OFFLINE", hf_constants.HF_HUB_OFFLINE),
        (tf_hub, "TRANSFORMERS_CACHE", tf_hub.TRANSFORMERS_CACHE),
        (tf_hub, "_is_offline_mode", tf_hub._is_offline_mode),
    ]
    os.environ.update(env)
    hf_constants.HF_HUB_CACHE = str(root)
    hf_constants.HF_HUB_OFFLINE = True
    tf_hub.TRANSFORMERS_CACHE = str(root)
    tf_hub._is_offline_mode = True
    _PIN_PATCHES.append([])
    _apply_pins(root)
    try:
        yield root
    finally:
        for pins, key, old in reversed(_PIN_PATCHES.pop()):
            pins[key] = old
        for obj, attr, value in saved_attrs:
            setattr(obj, attr, value)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def build(root: Path, full_size: bool = False, parts: Iterable[str] = ("laion", "msclap", "muq")) -> Path:
    """Build the cache under ``root``; call inside ``pointed_at(root)``. Returns root."""
    from huggingface_hub import constants

    if os.path.realpath(constants.HF_HUB_CACHE) != os.path.realpath(root):
        raise RuntimeError(f"build the fake hub inside pointed_at({root})")
    root.mkdir(parents=True, exist_ok=True)
    from timbredb.models import _compat

    _compat.ensure_torch_extras()
    parts = set(parts)
    build_text_repos(root, full_size=full_size)
    if "laion" in parts:
        build_laion(root)
    if "msclap" in parts:
        build_msclap(root, "2023")
    if "msclap2022" in parts:
        build_bert_model(root)
        build_msclap(root, "2022")
    if "muq" in parts:
        build_muq(root)
    return root


def tree_size_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())



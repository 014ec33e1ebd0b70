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

The stand-ins are built through the packages' own hub loaders, so building
and using the cache happen inside ``pointed_at(root)``, which points
huggingface_hub and transformers at it (both read HF_HUB_CACHE / HF_HUB_OFFLINE
only at import, so their module settings are switched too) and restores them.
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
    pieces += [("▁" + w, -2.0 - len(w) / 10) for w in WORDS]
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
        torch.save({"epoch": 45, "state_dict": state}, path)
        out[name] = path
    return out


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
    path = snapshot(root, "microsoft/msclap") / f"CLAP_weights_{version}.pth"
    torch.save({"model": clap.state_dict()}, path)
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
    from safetensors.torch import save_model
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
        torch.save(mulan.state_dict(), path)
    return path


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


@contextlib.contextmanager
def pointed_at(root: Path, hash_cache: Path | None = None) -> Iterator[Path]:
    """Point huggingface_hub, transformers and timbredb at ``root``, offline; restore after."""
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
    try:
        yield root
    finally:
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



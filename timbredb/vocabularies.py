"""Descriptor vocabularies and prompt templates.

Built-in vocabularies:
    ccmusic           the 16 CCMusic timbre descriptors (historical names the study prompts with)
    audealize-eq      the study's 20 EQ words
    audealize-reverb  the study's 20 reverb words
    study             all of the above (the default for `describe`)
    socialfx-eq       every English word of audealize/eqpoints.json (read from the data dir)
A vocabulary can also be a text file: one word per line, '#' starts a comment.
"""

from __future__ import annotations

import re
from pathlib import Path

from timbredb.errors import VocabularyError

CCMUSIC = (
    "bright", "clear", "coarse", "dim", "dry", "harmonious", "hoarse", "plump",
    "pure", "sharp", "slim", "soft", "thick", "thin", "turbid", "vigorous",
)
AUDEALIZE_EQ = (
    "warm", "cold", "soft", "loud", "bright", "soothing", "harsh", "heavy", "cool", "smooth",
    "calm", "clear", "tinny", "sharp", "hard", "crisp", "mellow", "dark", "peaceful", "gentle",
)
AUDEALIZE_REVERB = (
    "echo", "distant", "warm", "spacious", "loud", "deep", "muffled", "church", "big", "distorted",
    "hollow", "sad", "soft", "bass", "strong", "low", "haunting", "clear", "tinny", "hall",
)
BUILTIN: dict[str, tuple[str, ...]] = {
    "ccmusic": CCMUSIC,
    "audealize-eq": AUDEALIZE_EQ,
    "audealize-reverb": AUDEALIZE_REVERB,
    "study": tuple(dict.fromkeys(CCMUSIC + AUDEALIZE_EQ + AUDEALIZE_REVERB)),
}
DEFAULT_VOCABULARY = "study"
BARE = "{}"

# ---- the study's text calls (lindseydeng/timbre-semantics-release @ ca2ae10c, src/timbre_semantics/)
#: Experiment 1 embeds the 16 bare descriptor names in one call, in the rating CSV's column order
#: (``experiments.py::run_experiment1``: ``frame.columns[2:]``). The release does not ship that CSV;
#: this is the hub dataset's column order mapped by position onto the historical names
#: (timbredb/datasets/ccmusic.py ``HUB_TO_HISTORICAL``), timbredb's inference.
CCMUSIC_CSV_ORDER = (
    "slim", "bright", "dim", "sharp", "thick", "thin", "vigorous", "clear",
    "dry", "plump", "coarse", "pure", "hoarse", "harmonious", "soft", "turbid",
)


def study_prompt(word: str) -> str:
    """The study's Experiment 2 prompt (``design.py::text_prompt``): "an" only before "echo"."""
    return f"{'an' if word == 'echo' else 'a'} {word} sound"


#: every text list the study embeds in one call, in the order of that call: Experiment 2 embeds
#: ``sorted({text_prompt(d) for d in eq + reverb words})`` (35 prompts; "an echo sound" sorts last)
STUDY_TEXT_CALLS: dict[str, tuple[str, ...]] = {
    "exp1": CCMUSIC_CSV_ORDER,
    "exp2": tuple(sorted({study_prompt(w) for w in AUDEALIZE_EQ + AUDEALIZE_REVERB})),
}


def read_word_file(path: Path) -> list[str]:
    """Words from a text file: one per line (or comma-separated), '#' comments."""
    try:
        # utf-8-sig: a byte-order mark (Windows Notepad) is not part of the first word
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise VocabularyError(f"{path}: cannot read vocabulary file ({exc})") from exc
    words: list[str] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        words.extend(w.strip().lower() for w in line.split(",") if w.strip())
    if not words:
        raise VocabularyError(f"{path}: the vocabulary file has no words")
    return list(dict.fromkeys(words))


def resolve(
    name_or_file: str,
    data_dir: Path | None = None,
    stored: dict[str, list[str]] | None = None,
    *,
    allow_files: bool = True,
) -> tuple[str, list[str]]:
    """A vocabulary name (built-in, socialfx-eq, or stored) or a word file -> (name, words).

    Args:
        allow_files: also accept a path to a word file (the server passes False: a
            client must never make it read a file).
    """
    if name_or_file in BUILTIN:
        return name_or_file, list(BUILTIN[name_or_file])
    if name_or_file == "socialfx-eq":
        from timbredb.config import resolve_data_dir
        from timbredb.datasets.audealize import load_eq_curves

        return name_or_file, sorted(load_eq_curves(resolve_data_dir(data_dir)))
    if stored and name_or_file in stored:
        return name_or_file, list(stored[name_or_file])
    known = sorted(set(BUILTIN) | {"socialfx-eq"} | set(stored or {}))
    if not allow_files:
        raise VocabularyError(f"unknown vocabulary {name_or_file!r}: not one of {', '.join(known)}")
    path = Path(name_or_file)
    if path.is_file():
        return f"file:{path.resolve()}", read_word_file(path)
    raise VocabularyError(
        f"unknown vocabulary {name_or_file!r}: not a file, and not one of {', '.join(known)}"
    )


def check_template(template: str) -> str:
    """A prompt template has exactly one '{}' where the word goes."""
    if template.count("{}") != 1 or re.search(r"\{[^}]", template):
        raise VocabularyError(f"prompt template {template!r} must contain exactly one '{{}}' (e.g. 'a {{}} sound')")
    return template


def render_prompt(template: str, word: str) -> str:
    """Put the word into the template; "a {}" becomes "an {}" before a vowel."""
    check_template(template)
    text = template.replace("{}", word)
    if word[:1].lower() in "aeiou":
        text = re.sub(r"(^|\s)([Aa]) " + re.escape(word), lambda m: f"{m.group(1)}{m.group(2)}n {word}", text)
    return text


# ---------------------------------------------------------------- prompt sets and the ensemble (issue 11)
#: the template name whose text vector is the mean of a word's L2-normalised template vectors
ENSEMBLE = "ensemble"

#: named template sets for `timbredb ingest --prompt-set NAME`. "default" holds the study's two
#: templates (the bare word for Experiment 1, "a {} sound" for Experiment 2) and six common
#: phrasings of a timbre description from audio-text retrieval and CLIP-style prompting.
PROMPT_SETS: dict[str, tuple[str, ...]] = {
    "default": (
        BARE,
        "a {} sound",
        "the sound is {}",
        "a {} timbre",
        "this instrument sounds {}",
        "a {} tone",
        "a recording of a {} musical instrument",
        "music with a {} sound",
    ),
}


def prompt_set(name: str) -> tuple[str, ...]:
    """The templates of a named prompt set (VocabularyError naming the known sets)."""
    if name not in PROMPT_SETS:
        raise VocabularyError(f"unknown prompt set {name!r}; known: {', '.join(PROMPT_SETS)}")
    return PROMPT_SETS[name]


def check_query_template(template: str) -> str:
    """A template a query accepts: a stored template with one '{}', or 'ensemble'."""
    return template if template == ENSEMBLE else check_template(template)

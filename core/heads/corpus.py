"""The self-distillation corpus: the model's own answers to questions it wrote over a list of topics.

For every topic of ``TOPICS`` (several hundred, across everyday life, science, technology,
history, arts, work, health and more) the model first writes ``questions`` questions of its own
(sampled, so they vary), and each topic also gets the fixed instructions of ``TEMPLATES``. Every
question is then answered twice: greedily (what ``ar`` at T = 0 produces) and sampled at
``temperature`` (what a T > 0 run produces). Answers are decoded in batches (``decode_rows``:
one forward per step for ``batch`` rows).

Questions that share a word 6-gram with a suite prompt, or repeat a question already kept, are
dropped, so the suite's held-out prompts (and the bench's held-out split) stay out of training.
Stored as token ids (``uint16``) in a compressed ``.npz`` with the command, seed and counts,
so training is reproducible without regenerating. The target's hidden states at every answer's
positions, captured while decoding, are cached beside (``features_path``) for the feature head;
``corpus_features`` recomputes them from the ids where the cache is missing.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from core.config import SamplingConfig
from core.engine import make_engine
from core.engine.rows import WholeModel, decode_rows
from core.heads.data import HiddenSet, log
from core.heads.modules import ASSETS
from core.heads.tasks import KINDS, task_prompts
from core.models import LoadedModel, cache_root
from core.prompts import load_prompts
from core.text import encode_prompt

CORPUS = ASSETS / "corpus"

TOPICS = """
cooking pasta; baking bread; making coffee; brewing tea; vegetarian meals; meal planning; food safety; spices;
fermentation; chocolate; breakfast ideas; grilling; knife skills; kitchen organisation; healthy snacks;
gardening; growing tomatoes; houseplants; composting; lawn care; pruning trees; bees; birds in winter;
keeping chickens; adopting a dog; training a puppy; cat behaviour; aquariums; horses; caring for a rabbit;
saving money; budgeting; credit cards; paying off debt; buying a house; renting an apartment; insurance;
retirement savings; inflation; interest rates; the stock market; index funds; taxes; starting a small business;
writing a resume; job interviews; asking for a raise; remote work; time management; procrastination;
public speaking; negotiation; leadership; team meetings; giving feedback; writing emails; networking;
career change; learning a new language; studying for exams; note taking; reading faster; memory techniques;
online courses; homeschooling; teaching children to read; math anxiety; learning to code; Python programming;
JavaScript; databases; SQL queries; version control with git; unit testing; debugging; APIs; web design;
cloud computing; cybersecurity; passwords; phishing emails; privacy online; social media; smartphones;
laptops; building a computer; computer networks; Wi-Fi; the internet's history; search engines; open source
software; artificial intelligence; machine learning; neural networks; chatbots; robotics; self-driving cars;
3D printing; virtual reality; video games; game design; blockchain; electric cars; batteries; solar panels;
wind power; nuclear energy; hydropower; climate change; recycling; plastic pollution; ocean currents;
coral reefs; rainforests; deserts; glaciers; volcanoes; earthquakes; hurricanes; weather forecasting; clouds;
rainbows; the water cycle; photosynthesis; cells; DNA; evolution; genetics; vaccines; the immune system;
bacteria; viruses; antibiotics; the human heart; the brain; sleep; dreams; nutrition; vitamins; exercise;
running a marathon; yoga; swimming; cycling; strength training; stretching; back pain; posture; stress;
meditation; anxiety; happiness; friendship; loneliness; parenting teenagers; sibling rivalry; grandparents;
weddings; moving to a new city; making friends as an adult; volunteering; charity; kindness; habits;
motivation; goal setting; journaling; minimalism; decluttering; cleaning a house; laundry; ironing shirts;
home repairs; painting a room; plumbing leaks; electricity at home; saving energy at home; furniture;
interior design; architecture; bridges; skyscrapers; ancient Rome; ancient Egypt; ancient Greece; the
Middle Ages; castles; the Renaissance; the printing press; the Industrial Revolution; the steam engine;
World War I; World War II; the Cold War; the moon landing; the space race; the French Revolution; democracy;
elections; the United Nations; human rights; free speech; the rule of law; courts and juries; police work;
firefighters; nurses; doctors; pharmacists; teachers; farmers; pilots; sailors; astronauts; the solar system;
Mars; the Moon; the Sun; black holes; stars; galaxies; telescopes; gravity; light; sound; magnets;
electricity; atoms; chemical reactions; acids and bases; the periodic table; water; air pressure; friction;
simple machines; engines; airplanes; trains; ships; bicycles; traffic; public transport; city planning;
maps; geography; mountains; rivers; oceans; islands; countries of Europe; Japan; Brazil; Canada; Australia;
India; Africa's savannas; travel planning; packing a suitcase; camping; hiking safety; fishing; photography;
drawing; painting with watercolours; sculpture; museums; classical music; jazz; rock music; learning guitar;
playing piano; singing; dance; theatre; film making; documentaries; novels; poetry; short stories; writing a
story; fairy tales; mythology; libraries; newspapers; journalism; advertising; marketing; branding; sales;
customer service; economics; supply and demand; trade; globalisation; money's history; banks; philosophy;
ethics; logic; critical thinking; debate; psychology; emotions; personality; decision making; creativity;
curiosity; chess; board games; puzzles; football; basketball; tennis; the Olympic Games; sports injuries;
fashion; sewing; knitting; woodworking; pottery; jewellery; perfume; skin care; hair care; dentists;
brushing teeth; eyesight; hearing; allergies; first aid; colds and flu; headaches; hydration; sugar; coffee
and health; fast food; organic food; farming; soil; irrigation; fishing industry; forests; wildlife
conservation; endangered species; zoos; wolves; elephants; whales; sharks; insects; butterflies; ants;
spiders; snakes; frogs; dinosaurs; fossils; rocks and minerals; gold; diamonds; oil and gas; plastics;
steel; glass; paper; cotton; wool; clocks; calendars; numbers; fractions; geometry; probability; statistics;
algebra; calculus; prime numbers; cryptography; codes and ciphers; inventions; famous scientists; Isaac
Newton; Marie Curie; Albert Einstein; Charles Darwin; Leonardo da Vinci; Shakespeare; the Olympics' history;
holidays; birthdays; gift giving; manners; tipping; languages of the world; sign language; emojis; humour
"""

QUESTION_ASK = "Write one short question that someone curious might ask about {topic}. Reply with the question only."
TEMPLATES = (
    "Explain {topic} to a beginner.",
    "Give three practical tips about {topic}.",
)


def topics() -> list[str]:
    """The topic list, in order, without duplicates."""
    seen: dict[str, None] = {}
    for t in TOPICS.replace("\n", " ").split(";"):
        if t.strip():
            seen.setdefault(t.strip(), None)
    return list(seen)


@dataclass
class CorpusConfig:
    topics: int = 0  # 0: all
    questions: int = 2  # model-written questions per topic
    answer_tokens: int = 128
    temperature: float = 1.0
    batch: int = 32
    seed: int = 0
    command: str = ""


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _grams(text: str, n: int = 6) -> set[tuple[str, ...]]:
    w = _words(text)
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)} or {tuple(w)}


def suite_grams() -> set[tuple[str, ...]]:
    """Word 6-grams of every suite prompt (a question sharing one is too close to the suite)."""
    out: set[tuple[str, ...]] = set()
    for p in load_prompts():
        out |= _grams(p.prompt)
    return out


def question_key(text: str) -> str:
    return " ".join(_words(text))


def keep_questions(
    candidates: list[str], banned: set[tuple[str, ...]], asked: set[str] = frozenset()
) -> tuple[list[str], int]:
    """Clean questions (first line, no quotes or numbering), without near-copies of the suite, repeats or
    questions already ``asked`` (their ``question_key``); returns (kept, dropped)."""
    kept, seen, dropped = [], set(asked), 0
    for text in candidates:
        q = text.strip().splitlines()[0].strip() if text.strip() else ""
        q = re.sub(r"^(question:|q:|\d+[.)])\s*", "", q, flags=re.I).strip().strip('"').strip()
        key = question_key(q)
        if len(key.split()) < 4 or key in seen or _grams(q) & banned:
            dropped += 1
            continue
        seen.add(key)
        kept.append(q)
    return kept, dropped


def generate(
    model: LoadedModel,
    prompts: list[str],
    budget: int,
    sampling: SamplingConfig,
    batch: int,
    rng,
    what: str,
    features: list | None = None,
):
    """The model's answers (token ids) to ``prompts``, decoded ``batch`` rows at a time. ``features``: append,
    per answer, the target's last hidden states at every position but the last (bfloat16 [T - 1, H])."""
    member, answers, t0 = WholeModel(model), [], time.perf_counter()
    ids = [encode_prompt(model, p, budget) for p in prompts]
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        rows: list[list[int]] = [[] for _ in chunk]
        hidden: list[list[torch.Tensor]] = [[] for _ in chunk]
        steps = decode_rows(member, chunk, [budget] * len(chunk), sampling, rng, with_hidden=features is not None)
        for step in steps:
            for r in step:
                rows[r.row].append(r.token)
                if r.hidden is not None:
                    hidden[r.row].append(r.hidden.to("cpu", torch.bfloat16))
        answers += rows
        if features is not None:
            features += [torch.cat(h) for h in hidden]
        done = len(answers)
        made = sum(map(len, answers))
        rate = made / (time.perf_counter() - t0)
        log(f"  {what}: {done}/{len(ids)} ({made:,} tokens, {rate:.0f} tok/s, {time.perf_counter() - t0:.0f} s)")
    return ids, answers


def build_corpus(model: LoadedModel, cfg: CorpusConfig) -> dict:
    """Questions over the topics, then greedy and sampled answers; returns the arrays and metadata."""
    rng = torch.Generator(device=model.device).manual_seed(cfg.seed)
    chosen = topics()[: cfg.topics or None]
    asks = [QUESTION_ASK.format(topic=t) for t in chosen for _ in range(cfg.questions)]
    _, written = generate(model, asks, 40, SamplingConfig(0.8, seed=cfg.seed), cfg.batch, rng, "questions")
    texts = [model.tokenizer.decode(w, skip_special_tokens=True) for w in written]
    texts += [tpl.format(topic=t) for t in chosen for tpl in TEMPLATES]
    questions, dropped = keep_questions(texts, suite_grams())
    log(f"  {len(questions)} questions kept, {dropped} dropped (too short, repeated or close to a suite prompt)")
    seqs, kinds, features = [], [], []
    for kind, sampling in (("greedy", SamplingConfig(0.0)), ("sampled", SamplingConfig(cfg.temperature))):
        ids, answers = generate(
            model, questions, cfg.answer_tokens, sampling, cfg.batch, rng, f"{kind} answers", features
        )
        seqs += [(p, a) for p, a in zip(ids, answers, strict=True)]
        kinds += [kind] * len(answers)
    return {"questions": questions, "seqs": seqs, "kinds": kinds, "dropped": dropped, "features": features}


def save_corpus(path: Path, model: LoadedModel, cfg: CorpusConfig, built: dict) -> Path:
    meta = {
        "model": model.key,
        "config": asdict(cfg),
        "questions": built["questions"],
        "kinds": built["kinds"],
        "dropped_questions": built["dropped"],
        "generated_tokens": int(sum(len(a) for _, a in built["seqs"])),
    }
    return write_corpus(path, model, [p + a for p, a in built["seqs"]], [len(p) for p, _ in built["seqs"]], meta)


def write_corpus(path: Path, model: LoadedModel, seqs: list[list[int]], prompt_lengths: list[int], meta: dict) -> Path:
    """Token ids (uint16 where the vocabulary fits), sequence offsets, prompt lengths and metadata, compressed."""
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        tokens=np.array(
            [t for s in seqs for t in s], dtype=np.uint16 if model.config.vocab_size <= 2**16 else np.uint32
        ),
        offsets=np.concatenate([[0], np.cumsum(lengths)]),
        prompt_lengths=np.array(prompt_lengths, dtype=np.int64),
        meta=np.array(json.dumps(meta)),
    )
    return path


@dataclass
class TasksConfig:
    per_kind: int = 300  # math, writing, rewriting and advice prompts each (coding: its whole list)
    answer_tokens: int = 96
    batch: int = 32
    seed: int = 0
    command: str = ""
    kinds: tuple[str, ...] = KINDS


def task_rounds(meta: dict) -> list[dict]:
    """The task rounds appended so far (a corpus written before rounds held one, as a dict)."""
    rounds = meta.get("tasks", [])
    return [rounds] if isinstance(rounds, dict) else list(rounds)


def asked_questions(meta: dict) -> set[str]:
    """Keys of every prompt the corpus already answers (topic questions and task prompts)."""
    return {question_key(q) for q in meta.get("questions", []) + [p for r in task_rounds(meta) for p in r["prompts"]]}


def extend_with_tasks(model: LoadedModel, corpus: Corpus, cfg: TasksConfig, features: list | None) -> dict:
    """One round of greedy answers to ``core.heads.tasks`` prompts (rewriting ones over the corpus's own greedy
    answers), appended to ``corpus`` as kind "task"; a round repeats no prompt the corpus already answers and
    no seed of an earlier round. ``features``: the cached target features, extended in place."""
    rounds = task_rounds(corpus.meta)
    if cfg.seed in {r["seed"] for r in rounds}:
        raise ValueError(f"The corpus already holds a task round with seed {cfg.seed}: pick another --seed.")
    answers = [
        model.tokenizer.decode(s[n:], skip_special_tokens=True)
        for s, n, kind in zip(corpus.seqs, corpus.prompt_lengths, corpus.meta["kinds"], strict=True)
        if kind == "greedy"
    ]
    prompts = task_prompts(topics(), answers, cfg.per_kind, cfg.seed, cfg.kinds)
    kept, dropped = keep_questions(prompts, suite_grams(), asked_questions(corpus.meta))
    log(f"  {len(kept)} task prompts kept, {dropped} dropped (too short, already answered or close to a suite prompt)")
    rng = torch.Generator(device=model.device).manual_seed(cfg.seed)
    ids, out = generate(model, kept, cfg.answer_tokens, SamplingConfig(0.0), cfg.batch, rng, "task answers", features)
    corpus.seqs += [p + a for p, a in zip(ids, out, strict=True)]
    corpus.prompt_lengths += [len(p) for p in ids]
    corpus.meta["kinds"] += ["task"] * len(out)
    added = {**asdict(cfg), "prompts": kept, "dropped": dropped, "tokens": int(sum(map(len, out)))}
    corpus.meta["tasks"] = rounds + [added]
    corpus.meta["generated_tokens"] = int(corpus.meta.get("generated_tokens", 0)) + added["tokens"]
    return added


def corpus_path(model_key: str) -> Path:
    return CORPUS / f"{model_key}.npz"


def features_path(model_key: str) -> Path:
    """The target's hidden states over the corpus (hundreds of MB: a cache, not an asset)."""
    return cache_root() / "distill" / f"{model_key}-corpus-features.pt"


def corpus_features(model: LoadedModel, corpus: Corpus) -> list[torch.Tensor]:
    """Per sequence, f_0..f_{T-2} (bfloat16 [T - 1, H]): the cache written with the corpus, else one target
    forward per sequence."""
    path = features_path(model.key)
    feats = torch.load(path, weights_only=True) if path.is_file() else None
    if feats is None or len(feats) != len(corpus.seqs):
        log(f"  no cached features at {path}: computing them from the corpus ids (one forward per sequence)")
        feats = [target_features(model, s).to(torch.bfloat16) for s in corpus.seqs]
    return feats


@torch.inference_mode()
def target_features(model: LoadedModel, seq: list[int]) -> torch.Tensor:
    """f_0..f_{T-2}: the target's last hidden states (before its final norm) at every position but the last."""
    engine = make_engine(model, max_len=len(seq))
    return engine.forward(torch.tensor([seq[:-1]], device=model.device), last_only=True).last_hidden[0].float().cpu()


def corpus_hidden(model: LoadedModel) -> HiddenSet:
    """The corpus as training positions for heads that read the last hidden state (BPD): per answer position
    its f (float32), none held out (the corpus holds no suite prompt)."""
    corpus = load_corpus(model.key)
    feats = corpus_features(model, corpus)
    final = torch.cat([f.float() for f in feats])
    which = torch.cat([torch.full((len(f),), i) for i, f in enumerate(feats)])
    generated = torch.cat([torch.arange(len(f)) >= n - 2 for f, n in zip(feats, corpus.prompt_lengths, strict=True)])
    log(f"  corpus: {len(feats):,} sequences, {int(generated.sum()):,} answer positions")
    return HiddenSet({}, final, torch.zeros(len(final), dtype=torch.bool), which, generated)


def corpus_sample(corpus: Corpus, sequences: int) -> list[int]:
    """Indices of ``sequences`` corpus sequences spread evenly over it (every kind of question and task), all
    of them for 0 or more than it holds."""
    n = len(corpus.seqs)
    if sequences <= 0 or sequences >= n:
        return list(range(n))
    return [i * n // sequences for i in range(sequences)]


@torch.inference_mode()
def corpus_layer_hidden(model: LoadedModel, layer: int, sequences: int) -> HiddenSet:
    """Training positions for an exit head at layer e from the corpus (``corpus_sample``): per answer position
    h_e and the final hidden state, none held out (the corpus holds no suite prompt)."""
    corpus = load_corpus(model.key)
    by_layer, final, which, generated = [], [], [], []
    for i in corpus_sample(corpus, sequences):
        seq, start = corpus.seqs[i], corpus.prompt_lengths[i]
        engine = make_engine(model, max_len=len(seq))
        out = engine.forward(torch.tensor([seq], device=model.device), output_hidden=(layer,))
        by_layer.append(out.hidden[layer][0].float().cpu())
        final.append(out.last_hidden[0].float().cpu())
        which.append(torch.full((len(seq),), i))
        generated.append(torch.arange(len(seq)) >= start - 2)
    kept = torch.cat(generated)
    log(f"  corpus: {len(final):,} sequences, {int(kept.sum()):,} answer positions")
    return HiddenSet({layer: torch.cat(by_layer)}, torch.cat(final), torch.zeros(len(kept), dtype=torch.bool),
                     torch.cat(which), kept)


def save_features(model_key: str, features: list[torch.Tensor]) -> Path:
    path = features_path(model_key)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(features, path)
    return path


@dataclass
class Corpus:
    """Token sequences (prompt with its chat template, then the model's answer) and where each answer starts."""

    seqs: list[list[int]]
    prompt_lengths: list[int]
    meta: dict

    def generated_tokens(self) -> list[int]:
        return [t for s, n in zip(self.seqs, self.prompt_lengths, strict=True) for t in s[n:]]


def load_corpus(model_key: str, path: Path | None = None) -> Corpus:
    path = path or corpus_path(model_key)
    if not path.is_file():
        raise FileNotFoundError(
            f"No self-distillation corpus at '{path}': build one with `python -m core.train corpus --model ...`."
        )
    blob = np.load(path)
    tokens, offsets = blob["tokens"].astype(np.int64), blob["offsets"]
    seqs = [tokens[offsets[i] : offsets[i + 1]].tolist() for i in range(len(offsets) - 1)]
    return Corpus(seqs, blob["prompt_lengths"].tolist(), json.loads(str(blob["meta"])))

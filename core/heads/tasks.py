"""Task prompts that widen the self-distillation corpus beyond explanations and tips.

The topic questions (``core.heads.corpus``) are all expository prose, and a draft head trained on them
alone agrees with the model on held-out prose about half the time, on code a fifth of the time and on
a translation almost never. These tasks cover the other kinds of request a user makes of the lab:

- coding: small functions to write and programming ideas to explain with an example;
- math: arithmetic, primality, percentages and word problems, numbers drawn from ``seed``;
- writing: poems, story openings, letters and product descriptions over the topic list;
- rewriting and extraction: sentences the model itself wrote in its corpus answers, to translate,
  summarise, turn into a list, make formal or mine for facts;
- advice: multi-part requests over the topic list (compare two topics, weigh pros and cons, plan, choose
  under several criteria), the shape of the suite's multi-part prompts.

Every prompt passes the corpus's filter (no word 6-gram shared with a suite prompt), so the suite's
held-out prompts stay out; deterministic for a given corpus and seed.
"""

from __future__ import annotations

import random
import re

CODE_TASKS = """
reverses a string; checks whether a word is a palindrome; counts the vowels in a sentence; returns the
largest number in a list; removes duplicates from a list while keeping the order; computes the factorial
of n; checks whether a year is a leap year; converts Celsius to Fahrenheit; sums the digits of an integer;
finds the second largest value in a list; merges two sorted lists; counts how often each word appears in
a text; returns the average of a list of numbers; capitalises the first letter of every word; flattens a
nested list; checks whether two strings are anagrams; returns the greatest common divisor of two numbers;
finds all even numbers in a list; converts a binary string to an integer; rotates a list by k positions;
validates an email address with a regular expression; reads a text file and counts its lines; returns the
n-th triangular number; splits a list into chunks of size k; computes the median of a list; checks whether
a list is sorted; finds the longest word in a sentence; converts a dictionary to a list of pairs; returns
the intersection of two lists; computes compound interest; generates a random password; sorts a list of
dictionaries by a key; counts the uppercase letters in a string; returns the minimum and maximum of a list;
computes the power of a number without using the ** operator; checks whether a number is a perfect
square; returns the first n square numbers; removes the whitespace from a string; finds the index of an
item with binary search; transposes a matrix; computes the dot product of two vectors; converts seconds to
hours, minutes and seconds; returns the unique characters of a string; checks whether brackets in a string
are balanced; implements bubble sort; implements a simple stack class; implements a queue with two stacks;
parses a CSV line into fields; returns the running total of a list; groups words by their first letter
"""

CODE_IDEAS = """
recursion; list comprehensions; dictionaries; sets; tuples; classes and objects; inheritance; exceptions;
generators; decorators; lambda functions; string formatting; file handling; modules and imports; virtual
environments; type hints; unit tests; loops; while loops; variables and scope; mutable and immutable types;
sorting algorithms; hash tables; linked lists; binary trees; big-O notation; recursion versus iteration;
the difference between a list and a tuple; the difference between == and is; default arguments; keyword
arguments; reading JSON; regular expressions; slicing; the map and filter functions; error handling with
try and except; SQL joins; HTTP requests; JavaScript promises; CSS selectors
"""

CODE_TEMPLATES = ("In Python, write a function that {task}.", "Write a JavaScript function that {task}.")
IDEA_TEMPLATES = ("Explain {idea} in Python with a short example.", "What are {idea} used for in programming?")

WRITING_TEMPLATES = (
    "Write a short poem about {topic}.",
    "Write the first lines of a story about {topic}.",
    "Write a friendly letter to a friend about {topic}.",
    "Write a short product description for something related to {topic}.",
)

REWRITE_TEMPLATES = (
    "Translate this sentence into French: {text}",
    "Translate this sentence into Spanish: {text}",
    "Translate this sentence into German: {text}",
    "Summarise this in one sentence: {text}",
    "Turn this into a bullet list of its main ideas: {text}",
    "Make this sentence more formal: {text}",
    "Make this sentence simpler for a child: {text}",
    "List the key facts in this text: {text}",
)

ADVICE_TEMPLATES = (
    "Compare {topic} and {other}: how are they alike and how do they differ?",
    "What are the advantages and disadvantages of {topic}? Consider cost, time and effort.",
    "How should a beginner get started with {topic}? Consider equipment, cost, time and common mistakes.",
    "Describe the main parts of {topic} and how they fit together.",
    "Plan a one-week schedule for someone who wants to learn about {topic}.",
    "What should someone weigh when making a decision about {topic}? List the main factors.",
)

KINDS = ("coding", "math", "writing", "rewriting", "advice")

ITEMS = ("apples", "notebooks", "pencils", "tickets", "books", "cups of coffee", "bus passes", "plants")


def _items(block: str) -> list[str]:
    return [t.strip() for t in block.replace("\n", " ").split(";") if t.strip()]


def coding_tasks() -> list[str]:
    tasks = [tpl.format(task=t) for t in _items(CODE_TASKS) for tpl in CODE_TEMPLATES]
    return tasks + [tpl.format(idea=i) for i in _items(CODE_IDEAS) for tpl in IDEA_TEMPLATES]


def math_tasks(n: int, rng: random.Random) -> list[str]:
    """``n`` arithmetic, primality, percentage and word problems with numbers drawn from ``rng``."""
    makers = (
        lambda: f"What is {rng.randint(12, 999)} plus {rng.randint(12, 999)}? Explain each step.",
        lambda: f"Work out {rng.randint(3, 99)} times {rng.randint(3, 99)} and show the working.",
        lambda: f"Decide whether {rng.randint(20, 400)} can be divided by any number other than 1 and itself.",
        lambda: f"What is {rng.choice((5, 10, 15, 20, 25, 30, 40, 75))}% of {rng.randint(2, 90) * 10}? Show how.",
        lambda: (
            f"A shop sells {rng.choice(ITEMS)} for ${rng.randint(2, 30)} each. How much do "
            f"{rng.randint(3, 25)} of them cost? Explain."
        ),
        lambda: f"Add up the whole numbers from 1 to {rng.randint(5, 60)} and explain the method.",
        lambda: f"Solve for x: {rng.randint(2, 12)}x + {rng.randint(1, 50)} = {rng.randint(60, 200)}. Show each step.",
        lambda: f"A cyclist rides {rng.randint(20, 150)} km in {rng.randint(2, 6)} hours. How far is that per hour?",
    )
    return [makers[i % len(makers)]() for i in range(n)]


def writing_tasks(topics: list[str], rng: random.Random) -> list[str]:
    """One writing prompt per topic, the template chosen by ``rng``."""
    return [rng.choice(WRITING_TEMPLATES).format(topic=t) for t in topics]


def advice_tasks(topics: list[str], n: int, rng: random.Random) -> list[str]:
    """``n`` multi-part requests: a template and a topic (and a second topic to compare) drawn by ``rng``."""
    return [rng.choice(ADVICE_TEMPLATES).format(topic=rng.choice(topics), other=rng.choice(topics)) for _ in range(n)]


def first_sentence(text: str, lo: int = 8, hi: int = 32) -> str | None:
    """The first sentence of ``text`` with ``lo``..``hi`` words and no markup, else None."""
    for s in re.split(r"(?<=[.!?])\s+", text.replace("\n", " ")):
        s = s.strip()
        words = s.split()
        if lo <= len(words) <= hi and s[-1:] in ".!?" and not re.search(r"[*#`:\d]", s):
            return s
    return None


def rewriting_tasks(answers: list[str], n: int, rng: random.Random) -> list[str]:
    """Up to ``n`` rewriting and extraction prompts over sentences of the model's own ``answers``."""
    sentences = [s for s in map(first_sentence, answers) if s]
    rng.shuffle(sentences)
    return [REWRITE_TEMPLATES[i % len(REWRITE_TEMPLATES)].format(text=s) for i, s in enumerate(sentences[:n])]


def task_prompts(
    topics: list[str], answers: list[str], per_kind: int, seed: int, kinds: tuple[str, ...] = KINDS
) -> list[str]:
    """About ``per_kind`` prompts of each of ``kinds`` (coding: its whole list), in the order of ``KINDS``."""
    if set(kinds) - set(KINDS):
        raise ValueError(f"Unknown task kinds {sorted(set(kinds) - set(KINDS))}; use {', '.join(KINDS)}.")
    rng = random.Random(seed)
    writing = writing_tasks(topics, rng)
    rng.shuffle(writing)
    made = {
        "coding": coding_tasks(),
        "math": math_tasks(per_kind, rng),
        "writing": writing[:per_kind],
        "rewriting": rewriting_tasks(answers, per_kind, rng),
        "advice": advice_tasks(topics, per_kind, rng),
    }
    return [p for kind in KINDS if kind in kinds for p in made[kind]]

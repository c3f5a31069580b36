"""The README and docs/ keep their promises: every relative link points at a file that exists (and
an anchor at a heading of it), every ``python ...`` line of a command block names a script or a
module that exists, every installed command named there is declared in pyproject.toml, and the
README stays a landing page."""
from __future__ import annotations

import importlib.util
import re
import shlex
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "checks" / "README.md",
         ROOT / "data" / "README.md", *sorted((ROOT / "checks").glob("*/*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    out, seen = set(), {}
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    for m in re.finditer(r"^#{1,6} (.+)$", text, re.M):
        s = slug(m.group(1))
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def test_the_slug_is_githubs():
    assert slug("Residual extractors (`--extractor`)") == "residual-extractors---extractor"
    assert slug("Measured (CNNDetection CRN, deepfake; 20 + 20 images, 4-fold)") == \
        "measured-cnndetection-crn-deepfake-20--20-images-4-fold"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_at_something_that_exists(page):
    bad = []
    for target in LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{target}: no heading with that anchor in {dest.name}")
    assert not bad, bad


def _commands(page: Path) -> list[list[str]]:
    out = []
    for block in FENCE.findall(page.read_text(encoding="utf-8")):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #")[0].strip()
            for part in re.split(r"&&|;|\|", line):
                words = part.strip().split()
                if words and words[0] in ("python", "python3", "torchrun") or (words and words[0].startswith("dif-")):
                    try:
                        out.append(shlex.split(part.strip()))
                    except ValueError:
                        out.append(words)
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_names_a_script_or_module_that_exists(page):
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    bad = []
    for words in _commands(page):
        if words[0].startswith("dif-"):
            if words[0] not in scripts:
                bad.append(f"{' '.join(words)}: no installed command {words[0]}")
            continue
        args = [w for w in words[1:] if not w.startswith("--") or w == "-m"]
        if words[0] == "torchrun":
            args = [w for w in words[1:] if w.endswith(".py")]
        if not args:
            continue
        if args[0] == "-m":
            if importlib.util.find_spec(args[1]) is None:
                bad.append(f"{' '.join(words)}: no module {args[1]}")
        elif args[0].endswith(".py") and not (ROOT / args[0]).is_file():
            bad.append(f"{' '.join(words)}: no file {args[0]}")
    assert not bad, bad


def test_the_readme_is_a_landing_page():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    for part in ("## Set-up", "## Quick start", "## Headline results", "## Documentation", "## Citing"):
        assert part in text, part
    assert "python -m dif.demo data/demo" in text  # the quick start starts with the demo
    for page in (ROOT / "docs").glob("*.md"):  # every page is reachable from the landing page
        assert f"docs/{page.name}" in text, page.name


CODE = [*sorted((ROOT / "dif").rglob("*.py")), *sorted((ROOT / "benchmarks").glob("*.py")),
        ROOT / "train_dif.py", ROOT / "eval_dif.py", ROOT / "blank_experiment.py", ROOT / "repo_images" / "make_figures.py"]
HISTORY = re.compile(r"\bissues? \d+|\bstop \d+|\bsince (?:the )?(?:version|20\d\d)|\b20\d\d-\d\d-\d\d\b", re.I)


@pytest.mark.parametrize("path", PAGES + CODE + [ROOT / "dif" / "weights" / "dncnn17.md",
                                               ROOT / "dif" / "weights" / "dncnn17_jpeg.md",
                                               ROOT / "dif" / "weights" / "artificial" / "model_card.md"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_history_a_reader_cannot_look_up(path):
    """The program says what it does now: no issue or stop numbers, no dates, no "since" in the
    README, the docs, the model cards, the code or its help texts (findings.md names commits)."""
    bad = [f"line {i}: {m.group(0)!r}" for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
           for m in HISTORY.finditer(line)]
    assert not bad, bad


@pytest.mark.parametrize("page", sorted((ROOT / "docs").glob("*.md")), ids=lambda p: p.name)
def test_pages_stay_readable(page):
    limit = 300 if page.name == "dif.md" else 400
    assert len(page.read_text(encoding="utf-8").splitlines()) <= limit


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_benchmark_named_exists_or_names_its_commit(page):
    """A script of benchmarks/ named in running text exists, unless the sentence names the commit
    that holds it (a measurement whose script was retired: docs/findings.md)."""
    text = page.read_text(encoding="utf-8")
    bad = []
    for para in re.split(r"\n\s*\n", text):
        for name in re.findall(r"benchmarks/(\w+\.py)", para):
            if not (ROOT / "benchmarks" / name).is_file() and not re.search(r"\bcommit [0-9a-f]{7,40}\b", para):
                bad.append(name)
    assert not bad, sorted(set(bad))


def test_at_most_ten_benchmarks_and_none_loaded_by_path():
    scripts = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py"))
    assert len(scripts) <= 10, scripts
    for test in (ROOT / "tests").glob("test_*.py"):
        if test.name == "test_docs.py":
            continue
        text = test.read_text(encoding="utf-8")
        assert "spec_from_file_location" not in text and 'sys.path.insert(0, str(root / "benchmarks"' not in text, test.name

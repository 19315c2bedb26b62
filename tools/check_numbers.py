"""Flag numbers in a notebook's prose that nothing in the notebook computed or printed.

A number a markdown cell quotes should come from somewhere a reader can see: an output (printed
text, the text form of a result, an error), or the code itself (a setting such as `epochs=20`).
This tool lists the numbers in markdown cells that appear in none of the notebook's code cells and
outputs, and are not references. Usage:

    python tools/check_numbers.py notebooks/0*.ipynb

prints `path: cell N: "number" in "...context..."` for each flagged number (N counts all cells
from 0) and exits 1 if it flagged any, 0 otherwise.

What counts as found: the same number anywhere in the code or the text outputs, commas and a
trailing % ignored, or a number there that rounds to the prose's number at the prose's precision
(prose "71" matches an output "71.4%"). Figures are PNGs, so their titles count only where the code
that draws them spells them out. What counts as a reference (never flagged):

- the integers 0 to 10 and the years 1900 to 2099;
- numbers right after a reference word ("Table 4", "Figure 5", "Section 3.5", "Appendix B",
  "notebook 04", "arXiv:2105.01601", "Eq. 2");
- numbers followed, in the same sentence, by a citation: "(Table 2)", "Figure 5", "Section 3",
  "Appendix C", "et al.", "[12]";
- numbers in arithmetic the prose writes out ("14 · 14 = 196", "1/0.75");
- numbers that are part of a name ("ImageNet-21k", "JFT-300M", "Mixer-B/16", "mixer_b16_224"),
  and whatever sits in a link target or a URL.

The tool cannot tell a number the prose derives from outputs (a ratio, a difference) from a stray
one: it flags both, and a person decides.
"""

import re
import sys
from pathlib import Path

import nbformat

NUMBER = re.compile(r"(?<![\d.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?")
REFERENCE_WORD = re.compile(
    r"(?:Table|Tables|Figure|Figures|Fig\.|Section|Sections|Sec\.|Appendix|Eq\.|Equation|"
    r"notebook|notebooks|Notebook|Notebooks|arXiv:|Chapter|Exercise|exercise)\s*"
    r"(?:\d+(?:\.\d+)*\s*(?:,|and|to|or)\s*)*$"
)
CITATION = re.compile(
    r"\((?:Table|Figure|Fig\.|Section|Appendix)\b|\b(?:Table|Figure|Section|Appendix)\s+[\dA-Z]"
    r"|et al\.|\[\d+\]"
)
LINK_OR_URL = re.compile(r"\]\([^)]*\)|https?://\S+|\b[\w.-]+\.(?:ipynb|py|md|svg|png|gif)\b")
SENTENCE_END = re.compile(r"[.;:!?](?:\s|$)|\n\n")


def _value(integer: str, fraction: str | None) -> str:
    return integer.replace(",", "") + (fraction or "")


def known_numbers(notebook) -> set[str]:
    """Every number in the code cells and in the text of their outputs."""
    texts = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        texts.append(cell.source)
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                texts.append(output.get("text", ""))
            elif output.get("output_type") == "error":
                texts.append(f"{output.get('ename', '')}: {output.get('evalue', '')}")
            else:
                plain = output.get("data", {}).get("text/plain", "")
                texts.append(plain if isinstance(plain, str) else "".join(plain))
    found = set()
    for text in texts:
        for match in re.finditer(r"(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?", text):
            found.add(_value(match[1], match[2]))
        found.update(m[0].replace("_", "") for m in re.finditer(r"\b\d+(?:_\d{3})+\b", text))
    return found


def _matches(number: str, known: set[str]) -> bool:
    if number in known:
        return True
    decimals = len(number.partition(".")[2])
    target = float(number)
    return any(abs(round(float(k), decimals) - target) < 1e-9 for k in known)


def _is_reference(text: str, start: int, end: int, number: str) -> bool:
    value = float(number)
    if value <= 10 and "." not in number:
        return True
    if "." not in number and 1900 <= value <= 2099:
        return True
    before, after = text[max(0, start - 40) : start], text[end:]
    if REFERENCE_WORD.search(before):
        return True
    if before[-1:].isalpha() and not (before[-1:] == "x" and before[-2:-1].isdigit()):
        return True  # part of a name: b16 (Mixer-B/16 is caught by the next rule)
    if re.search(r"[·×*/=]\s*$", before) or re.match(r"\s*[·×*/=]", after):
        return True  # arithmetic written out in the prose (14 · 14 = 196): the reader checks it
    if re.search(r"\w_$|[A-Za-z][-/]$", before) or re.match(r"[A-Za-wyz]", after):
        return True  # ImageNet-21k, Mixer-B/16, mixer_b16_224, JFT-300M
    sentence = SENTENCE_END.split(after, maxsplit=1)[0]
    return bool(CITATION.search(sentence))


def check(path: Path) -> list[str]:
    """One line per flagged number in the notebook at `path`."""
    notebook = nbformat.read(path, as_version=4)
    known = known_numbers(notebook)
    flagged = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "markdown":
            continue
        text = LINK_OR_URL.sub(lambda m: " " * len(m[0]), cell.source)  # keep the offsets
        for match in NUMBER.finditer(text):
            number = _value(match[1], match[2])
            if _is_reference(text, match.start(), match.end(), number):
                continue
            if _matches(number, known):
                continue
            context = " ".join(text[max(0, match.start() - 40) : match.end() + 40].split())
            flagged.append(f'{path}: cell {index}: "{match[0]}" in "...{context}..."')
    return flagged


def main(paths: list[str]) -> int:
    flagged = [line for path in paths for line in check(Path(path))]
    print("\n".join(flagged) if flagged else f"no unexplained numbers in {len(paths)} notebook(s)")
    return 1 if flagged else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

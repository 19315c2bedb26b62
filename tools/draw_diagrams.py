"""Draw the course's architecture diagrams as SVG files in docs/.

    python tools/draw_diagrams.py

Writes `docs/mixing-axes.svg` (the N x C table and the axis each MLP mixes), `docs/mixer-block.svg`
(one Mixer block) and `docs/mixer-model.svg` (the whole model), after Figure 1 of Tolstikhin et
al. 2021. Notebooks 02 and 03 show them as markdown images, so they are not outputs nbval compares.
The SVG is written by hand (a few boxes, arrows and labels), so the files are small, readable and
the same on every machine.
"""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
TOKEN = "#f4a261"  # token mixing: orange
CHANNEL = "#2a9d8f"  # channel mixing: teal
NORM = "#e9ecef"
FONT = "font-family='Helvetica, Arial, sans-serif'"


def svg(width: int, height: int, body: list[str], title: str) -> str:
    return "\n".join(
        [
            f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
            f"viewBox='0 0 {width} {height}' {FONT} font-size='13'>",
            f"<title>{title}</title>",
            "<defs><marker id='arrow' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='7' "
            "markerHeight='7' orient='auto-start-reverse'><path d='M0,0 L10,5 L0,10 z' "
            "fill='#333'/></marker></defs>",
            f"<rect width='{width}' height='{height}' fill='white'/>",
            *body,
            "</svg>",
            "",
        ]
    )


def box(x, y, w, h, label, fill="white", bold=False, size=13) -> str:
    weight = " font-weight='bold'" if bold else ""
    lines = label.split("\n")
    texts = "".join(
        f"<text x='{x + w / 2}' y='{y + h / 2 + (k - (len(lines) - 1) / 2) * (size + 3) + 4}' "
        f"text-anchor='middle' font-size='{size}'{weight}>{line}</text>"
        for k, line in enumerate(lines)
    )
    return (
        f"<rect x='{x}' y='{y}' width='{w}' height='{h}' rx='6' fill='{fill}' "
        f"stroke='#333'/>" + texts
    )


def arrow(x1, y1, x2, y2) -> str:
    return (
        f"<line x1='{x1}' y1='{y1}' x2='{x2}' y2='{y2}' stroke='#333' stroke-width='1.5' "
        "marker-end='url(#arrow)'/>"
    )


def text(x, y, label, anchor="middle", size=13, style="") -> str:
    return f"<text x='{x}' y='{y}' text-anchor='{anchor}' font-size='{size}' {style}>{label}</text>"


def grid(x, y, rows, cols, cell, highlight=None) -> list[str]:
    """A table of rows x cols cells; `highlight` = ('row' | 'col', index, colour)."""
    parts = []
    for r in range(rows):
        for c in range(cols):
            fill = "white"
            if highlight and (
                (highlight[0] == "row" and r == highlight[1])
                or (highlight[0] == "col" and c == highlight[1])
            ):
                fill = highlight[2]
            parts.append(
                f"<rect x='{x + c * cell}' y='{y + r * cell}' width='{cell}' height='{cell}' "
                f"fill='{fill}' stroke='#999' stroke-width='0.6'/>"
            )
    return parts


def mixing_axes() -> str:
    rows, cols, cell = 8, 12, 16
    body = []
    for k, (x0, kind, colour, name, what) in enumerate(
        [
            (70, "col", TOKEN, "token mixing", "one channel at all N positions"),
            (520, "row", CHANNEL, "channel mixing", "all C channels of one patch"),
        ]
    ):
        y0 = 70
        body += grid(x0, y0, rows, cols, cell, (kind, 4 if kind == "col" else 2, colour))
        body.append(text(x0 + cols * cell / 2, 30, f"<tspan font-weight='bold'>{name}</tspan>"))
        body.append(text(x0 + cols * cell / 2, 50, what, size=12))
        body.append(text(x0 + cols * cell / 2, y0 + rows * cell + 22, "C channels →", size=12))
        body.append(
            f"<text x='{x0 - 10}' y='{y0 + rows * cell / 2}' text-anchor='middle' font-size='12' "
            f"transform='rotate(-90 {x0 - 10} {y0 + rows * cell / 2})'>N tokens (patches) →</text>"
        )
        if kind == "col":
            note = ["MLP: N → D_S → N", "the same MLP for", "every one of the C columns"]
        else:
            note = ["MLP: C → D_C → C", "the same MLP for", "every one of the N rows"]
        for j, line in enumerate(note):
            body.append(text(x0 + cols * cell + 12, y0 + 30 + 18 * j, line, "start", 12))
        del k
    return svg(900, 230, body, "The axis each MLP of a Mixer block mixes")


TOKEN_SHAPES = "W1: D_S × N,  W2: N × D_S"
CHANNEL_SHAPES = "W3: D_C × C,  W4: C × D_C"
ITALIC = "font-style='italic'"


def mixer_block() -> str:
    body = []
    x, w = 200, 220
    steps = [
        ("input X: N tokens × C channels", "white", 20),
        ("LayerNorm (each token over its C channels)", NORM, 80),
        (f"token-mixing MLP, one per channel\nW2 · GELU(W1 · X)\n{TOKEN_SHAPES}", TOKEN, 140),
        ("+", "white", 228),
        ("LayerNorm (each token over its C channels)", NORM, 283),
        (f"channel-mixing MLP, one per token\nGELU(X · W3ᵀ) · W4ᵀ\n{CHANNEL_SHAPES}", CHANNEL, 343),
        ("+", "white", 431),
        ("output: N tokens × C channels", "white", 486),
    ]
    centre = x + w / 2
    for k, (label, fill, y) in enumerate(steps):
        if label == "+":
            body.append(f"<circle cx='{centre}' cy='{y + 12}' r='12' fill='white' stroke='#333'/>")
            body.append(text(centre, y + 18, "+", size=18))
        else:
            h = 34 + 16 * label.count("\n")
            body.append(box(x - 60, y, w + 120, h, label, fill, size=12))
        if k + 1 < len(steps):
            bottom = y + (24 if label == "+" else 34 + 16 * label.count("\n"))
            body.append(arrow(centre, bottom, centre, steps[k + 1][2]))
    # The two skip connections: from the block's input (and the first half's output) to each +.
    right = x + w + 90
    for branch, plus in [(67, 240), (268, 443)]:
        body.append(f"<circle cx='{centre}' cy='{branch}' r='3' fill='#333'/>")
        body.append(
            f"<path d='M{centre},{branch} H{right} V{plus} H{centre + 14}' fill='none' "
            "stroke='#333' stroke-width='1.5' marker-end='url(#arrow)'/>"
        )
        body.append(text(right + 8, (branch + plus) / 2, "skip", "start", 12, ITALIC))
    note = "DropPath (training only) sits on each MLP branch, before the +."
    body.append(text(centre, 556, note, size=12))
    return svg(640, 570, body, "One Mixer block")


def mixer_model() -> str:
    body = []
    y, h = 60, 60
    items = [
        ("image\nH × W × 3", "white", 90),
        ("cut into N\npatches P × P", "white", 110),
        ("per-patch\nLinear (stem)\nP·P·3 → C", NORM, 110),
        ("table\nN × C", "white", 80),
        ("Mixer block\n× depth", "#fde8d0", 110),
        ("LayerNorm", NORM, 90),
        ("mean over\nthe N tokens", "white", 100),
        ("Linear\nhead", NORM, 70),
        ("class\nscores", "white", 70),
    ]
    x = 15
    for k, (label, fill, w) in enumerate(items):
        body.append(box(x, y, w, h + (10 if label.count("\n") == 2 else 0), label, fill, size=12))
        if k + 1 < len(items):
            body.append(arrow(x + w, y + h / 2, x + w + 22, y + h / 2))
        x += w + 22
    body.append(
        text(
            x / 2,
            170,
            "Each Mixer block: token mixing (across the N patches), then channel mixing (across "
            "the C channels),",
            size=12,
        )
    )
    body.append(
        text(x / 2, 188, "each as x + MLP(LayerNorm(x)). The table keeps its shape N × C.", size=12)
    )
    body.append(text(x / 2, 30, "<tspan font-weight='bold'>MLP-Mixer, end to end</tspan>"))
    return svg(int(x) + 10, 205, body, "The whole MLP-Mixer")


def main() -> None:
    DOCS.mkdir(exist_ok=True)
    for name, draw in [
        ("mixing-axes.svg", mixing_axes),
        ("mixer-block.svg", mixer_block),
        ("mixer-model.svg", mixer_model),
    ]:
        (DOCS / name).write_text(draw())
        print("wrote", (DOCS / name).relative_to(DOCS.parent))


if __name__ == "__main__":
    main()

"""A transfer report as text, Markdown, HTML and a matplotlib figure."""

from __future__ import annotations

import base64
import html
import io
import math

from sktransfer._optional import import_optional

# Columns shown in the tables, with their headers.
_COLUMNS = (
    ("kind", "kind"),
    ("score_mean", "{scoring} mean"),
    ("score_sd", "sd"),
    ("difference", "vs best baseline"),
    ("ci", "{level} CI"),
    ("p_value", "p"),
    ("verdict", "verdict"),
    ("encode_s", "encode s"),
    ("fit_s", "fit s / split"),
    ("predict_s", "predict s / split"),
)

_CURVE_COLUMNS = (
    ("train_size", "training samples"),
    ("score_mean", "{scoring} mean"),
    ("score_sd", "sd"),
    ("difference", "vs best baseline"),
    ("ci", "{level} CI"),
    ("verdict", "verdict"),
)

VERDICT_COLOURS = {
    "transfer helps": "#1b7837",
    "no evidence either way": "#777777",
    "negative transfer": "#b2182b",
    "reference": "#2166ac",
}


def _number(value, digits: int = 3, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _seconds(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.3g}"


def _cells(row, columns) -> list[str]:
    out = []
    for key, _ in columns:
        if key == "ci":
            lo, hi = row["ci_low"], row["ci_high"]
            out.append("" if math.isnan(lo) else f"{lo:+.3f} to {hi:+.3f}")
        elif key in ("score_mean", "score_sd"):
            out.append(_number(row[key]))
        elif key == "difference":
            out.append(_number(row[key], signed=True))
        elif key == "p_value":
            p = row[key]
            out.append("" if math.isnan(p) else ("<0.001" if p < 0.001 else f"{p:.3f}"))
        elif key.endswith("_s"):
            out.append(_seconds(row[key]))
        elif key == "train_size":
            out.append(f"{int(row[key]):,}")
        else:
            out.append(str(row[key]))
    return out


def _headers(report, columns, first: str) -> list[str]:
    level = f"{100 * report.confidence_:g}%"
    return [first] + [h.format(scoring=report.scoring_, level=level) for _, h in columns]


def results_rows(report) -> tuple[list[str], list[list[str]]]:
    """Headers and string cells of the results table."""
    rows = [[str(name)] + _cells(row, _COLUMNS) for name, row in report.results_.iterrows()]
    return _headers(report, _COLUMNS, "candidate"), rows


def curve_rows(report) -> tuple[list[str], list[list[str]]]:
    """Headers and string cells of the learning-curve table."""
    table = report.learning_curves_
    rows = [[str(row["candidate"])] + _cells(row, _CURVE_COLUMNS) for _, row in table.iterrows()]
    return _headers(report, _CURVE_COLUMNS, "candidate"), rows


_SHIFT_HEADERS = (
    "pretrained features",
    "domain-classifier AUC",
    "sd",
    "MMD²",
    "permutation p",
    "shift",
    "source / target samples",
)

SHIFT_NOTE = (
    "Domain shift: how far apart the target samples (sample_domain < 0) are from the "
    "source in each pretrained encoder's features: the cross-validated ROC AUC of a "
    "classifier telling them apart (0.5: no detectable shift) and the unbiased MMD² with "
    "a Gaussian kernel, tested by permutation."
)


def shift_rows(report) -> tuple[list[str], list[list[str]]] | None:
    """Headers and string cells of the domain-shift table; None without ``sample_domain``."""
    table = getattr(report, "domain_shift_", None)
    if table is None:
        return None
    rows = []
    for name, row in table.iterrows():
        p = row["mmd_pvalue"]
        rows.append(
            [
                str(name),
                _number(row["auc"]),
                _number(row["auc_sd"]),
                f"{row['mmd2']:.4f}",
                "<0.001" if p < 0.001 else f"{p:.3f}",
                str(row["shift"]),
                f"{int(row['n_source']):,} / {int(row['n_target']):,}",
            ]
        )
    return list(_SHIFT_HEADERS), rows


def _plain_table(headers, rows) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def markdown_table(headers, rows) -> str:
    """A GitHub Markdown table, numbers right-aligned."""

    def numeric(i):
        return all(
            r[i] == "" or r[i].replace(",", "").lstrip("+-<").replace(".", "", 1).isdigit()
            for r in rows
        )

    align = ["---:" if i and numeric(i) else "---" for i in range(len(headers))]
    escape = [[c.replace("|", "\\|") for c in r] for r in rows]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in escape]
    return "\n".join(lines)


def _about(report) -> str:
    return (
        f"{report.n_samples_:,} samples ({report.modality_} {report.task_}), "
        f"{report.cv_description_}, the same splits for every candidate; "
        f"{report.scoring_} (higher is better); paired comparison with the best "
        f"from-scratch baseline ({report.reference_}) by the corrected resampled t-test "
        f"(Nadeau & Bengio), {100 * report.confidence_:g}% confidence intervals."
    )


def summary(report) -> str:
    headers, rows = results_rows(report)
    parts = [f"Verdict: {report.verdict_}", _about(report), _plain_table(headers, rows)]
    shift = shift_rows(report)
    if shift is not None:
        parts += [SHIFT_NOTE, _plain_table(*shift)]
    return "\n\n".join(parts)


def markdown(report) -> str:
    parts = [
        f"**Verdict:** {report.verdict_}",
        _about(report),
        markdown_table(*results_rows(report)),
    ]
    shift = shift_rows(report)
    if shift is not None:
        parts += [SHIFT_NOTE, markdown_table(*shift)]
    if report.learning_curves_ is not None:
        parts += ["Learning curves:", markdown_table(*curve_rows(report))]
    return "\n\n".join(parts) + "\n"


def _html_table(headers, rows) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            style = ""
            colour = next((c for v, c in VERDICT_COLOURS.items() if cell == v), None)
            if colour:
                style = f' style="color:{colour};font-weight:bold"'
            elif i and cell and cell.lstrip("+-<").replace(".", "", 1).replace(",", "").isdigit():
                style = ' style="text-align:right"'
            cells.append(f"<td{style}>{html.escape(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def html_fragment(report) -> str:
    shift = shift_rows(report)
    domain = ""
    if shift is not None:
        domain = f"<p>{html.escape(SHIFT_NOTE)}</p>{_html_table(*shift)}"
    return (
        f"<div><p><b>Verdict:</b> {html.escape(report.verdict_)}</p>"
        f"<p>{html.escape(_about(report))}</p>{_html_table(*results_rows(report))}"
        f"{domain}</div>"
    )


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;font-size:0.9em}"
    "th,td{border-bottom:1px solid #ddd;padding:4px 8px}th{text-align:left}"
    "img{max-width:100%}"
)


def html_page(report) -> str:
    """A page that needs nothing else: the plot is an embedded PNG."""
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"><title>Transfer report</title>',
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Transfer report</h1>",
        html_fragment(report),
    ]
    try:
        figure = plot(report)
    except ImportError as exc:
        parts.append(f"<p><i>No plot: {html.escape(str(exc))}</i></p>")
    else:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(figure)
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        parts.append(f'<img alt="scores and learning curves" src="data:image/png;base64,{data}">')
    if report.learning_curves_ is not None:
        parts += ["<h2>Learning curves</h2>", _html_table(*curve_rows(report))]
    parts.append("</body></html>")
    return "\n".join(parts)


def plot(report, *, figsize=None):
    """Left: each candidate's difference to the best baseline, with its CI. Right: curves."""
    import_optional("matplotlib")
    import matplotlib.pyplot as plt
    import numpy as np

    curves = report.learning_curves_
    ncols = 2 if curves is not None else 1
    if figsize is None:
        figsize = (6.5 * ncols, 1.2 + 0.45 * len(report.results_))
    fig, axes = plt.subplots(1, ncols, figsize=figsize, squeeze=False, layout="constrained")
    ax = axes[0, 0]
    table = report.results_.iloc[::-1]
    positions = np.arange(len(table))
    for y, (_, row) in zip(positions, table.iterrows(), strict=True):
        mean, sd = row["score_mean"], row["score_sd"]
        colour = VERDICT_COLOURS.get(row["verdict"], "#444444")
        ax.errorbar(mean, y, xerr=sd, fmt="o", color=colour, capsize=3)
        if not math.isnan(row["ci_low"]):
            ref = report.results_.loc[report.reference_, "score_mean"]
            ax.plot([ref + row["ci_low"], ref + row["ci_high"]], [y - 0.18] * 2, color=colour, lw=3)
    ref_mean = report.results_.loc[report.reference_, "score_mean"]
    ax.axvline(ref_mean, color=VERDICT_COLOURS["reference"], ls="--", lw=1)
    ax.set_yticks(positions, [str(n) for n in table.index], fontsize=8)
    ax.set_xlabel(
        f"{report.scoring_}: mean ± sd over splits (dot), "
        f"best baseline + {100 * report.confidence_:g}% CI of the difference (bar)",
        fontsize=8,
    )
    ax.set_title("Candidates vs the best from-scratch baseline", fontsize=10)
    if curves is not None:
        ax = axes[0, 1]
        for name in report.results_.index:
            part = curves[curves["candidate"] == name]
            line = ax.plot(part["train_size"], part["score_mean"], marker="o", ms=3, label=name)
            ax.fill_between(
                part["train_size"],
                part["score_mean"] - part["score_sd"],
                part["score_mean"] + part["score_sd"],
                color=line[0].get_color(),
                alpha=0.15,
            )
        ax.set_xscale("log")
        ax.set_xlabel("labelled training samples")
        ax.set_ylabel(f"{report.scoring_} (mean ± sd over splits)")
        ax.set_title("Learning curves", fontsize=10)
        ax.legend(fontsize=7)
    return fig

"""``report.ipynb``: the static notebook Clarify writes beside ``analysis.json``.

Tables of the bias metrics per facet and the global SHAP values, in Markdown, and one
code cell that plots the SHAP values from ``analysis.json`` when it is run.
"""

from __future__ import annotations

import json
from typing import Any


def _value(metric: dict[str, Any]) -> str:
    if metric.get("value") is None:
        return f"error: {metric.get('error', '')}"
    value = metric["value"]
    return value if isinstance(value, str) else f"{value:.4f}"


def _bias_table(section: dict[str, Any], title: str) -> str:
    lines = [f"## {title}", "", f"Label `{section['label']}`, positive value or threshold "
             f"`{section['label_value_or_threshold']}`.", ""]
    for facet, reports in section["facets"].items():
        for report in reports:
            lines += [f"### Facet `{facet}` = `{report['value_or_threshold']}`", "", "| metric | value |", "|---|---|"]
            lines += [f"| {m['description']} | {_value(m)} |" for m in report["metrics"]]
            lines.append("")
    return "\n".join(lines)


def _cell(kind: str, text: str) -> dict[str, Any]:
    cell: dict[str, Any] = {"cell_type": kind, "metadata": {}, "source": text}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def notebook(analysis: dict[str, Any], title: str | None = None) -> str:
    """The report as notebook JSON (nbformat 4, written directly: the container needs no nbformat)."""
    intro = (f"# {title or 'Analysis Report'}\n\nWritten by the offline SageMaker Clarify container from "
             "`analysis.json` in this folder.")
    cells = [_cell("markdown", intro)]
    for key, heading in (("pre_training_bias_metrics", "Pre-training bias metrics"),
                         ("post_training_bias_metrics", "Post-training bias metrics")):
        if key in analysis:
            cells.append(_cell("markdown", _bias_table(analysis[key], heading)))
    for label, shap in (analysis.get("explanations", {}).get("kernel_shap") or {}).items():
        ranked = sorted(shap["global_shap_values"].items(), key=lambda kv: -abs(kv[1]))
        rows = "\n".join(f"| {name} | {value:.4f} |" for name, value in ranked)
        cells.append(_cell("markdown", f"## Feature importance (Kernel SHAP, {label})\n\nExpected value "
                                       f"{shap['expected_value']:.4f}.\n\n| feature | global SHAP value |\n"
                                       f"|---|---|\n{rows}"))
        cells.append(_cell("code", "import json\nimport matplotlib.pyplot as plt\n\nvalues = json.load(open("
                                   f"'analysis.json'))['explanations']['kernel_shap'][{label!r}]['global_shap_values']"
                                   "\nnames = sorted(values, key=values.get)\nplt.barh(names, [values[n] for n in "
                                   "names])\nplt.xlabel('global SHAP value')\nplt.show()"))
    document = {"cells": cells, "nbformat": 4, "nbformat_minor": 4,
                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}
    return json.dumps(document, indent=1)

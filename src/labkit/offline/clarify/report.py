"""``report.ipynb``: the static notebook Clarify writes beside ``analysis.json``.

Tables of the bias metrics per facet and the global SHAP values, in Markdown, and one
code cell that plots the SHAP values from ``analysis.json`` when it is run.
"""

from __future__ import annotations

from typing import Any

import nbformat


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


def notebook(analysis: dict[str, Any], title: str | None = None) -> str:
    cells = [nbformat.v4.new_markdown_cell(f"# {title or 'Analysis Report'}\n\nWritten by the offline SageMaker "
                                           "Clarify container from `analysis.json` in this folder.")]
    if "pre_training_bias_metrics" in analysis:
        cells.append(nbformat.v4.new_markdown_cell(_bias_table(analysis["pre_training_bias_metrics"],
                                                               "Pre-training bias metrics")))
    if "post_training_bias_metrics" in analysis:
        cells.append(nbformat.v4.new_markdown_cell(_bias_table(analysis["post_training_bias_metrics"],
                                                               "Post-training bias metrics")))
    for label, shap in (analysis.get("explanations", {}).get("kernel_shap") or {}).items():
        ranked = sorted(shap["global_shap_values"].items(), key=lambda kv: -abs(kv[1]))
        rows = "\n".join(f"| {name} | {value:.4f} |" for name, value in ranked)
        cells.append(nbformat.v4.new_markdown_cell(
            f"## Feature importance (Kernel SHAP, {label})\n\nExpected value {shap['expected_value']:.4f}.\n\n"
            f"| feature | global SHAP value |\n|---|---|\n{rows}"))
        cells.append(nbformat.v4.new_code_cell(
            "import json\nimport matplotlib.pyplot as plt\n\n"
            f"values = json.load(open('analysis.json'))['explanations']['kernel_shap'][{label!r}]['global_shap_values']\n"
            "names = sorted(values, key=values.get)\nplt.barh(names, [values[n] for n in names])\n"
            "plt.xlabel('global SHAP value')\nplt.show()"))
    return nbformat.writes(nbformat.v4.new_notebook(cells=cells))

"""Figures and the HTML/Markdown reports, drawn from the store."""

from scalarize.report.experiment import format_table, results_rows, write_report

__all__ = ["format_table", "results_rows", "write_report"]

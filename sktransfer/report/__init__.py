"""The transfer report: should this data use a pretrained model, and which one?

:func:`transfer_report` cross-validates frozen pretrained encoders, from-scratch
baselines and their combination on the same splits and compares each with the
best baseline by a test that is valid for cross-validation; it returns a
:class:`TransferReport` (tables, verdict, plot, Markdown and HTML).
"""

from sktransfer.report._report import TransferReport, transfer_report

__all__ = ["TransferReport", "transfer_report"]

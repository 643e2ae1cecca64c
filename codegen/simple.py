"""Expand the Simple module template into its three packages.

Invora documents three Simple services with one shape (invoices, credit notes, debit notes) but does not
publish their schema. ``simple/service.proto.in`` is our design of that shape; this script writes one
``.proto`` per document kind so the three can never drift apart. Lines starting with ``//@notes`` are
kept (without the marker) only for the correction documents, which refer to an original invoice.
"""

from __future__ import annotations

import pathlib
import string
from dataclasses import dataclass

TEMPLATE = pathlib.Path(__file__).with_name("simple") / "service.proto.in"


@dataclass(frozen=True)
class Kind:
    segment: str  # package segment and file directory, e.g. "credit_notes"
    doc: str  # message name of the document, e.g. "CreditNote"
    service: str
    path: str  # REST collection path segment
    scope_area: str  # e.g. "CreditNotes"
    number_example: str
    correction: bool


KINDS = (
    Kind("invoices", "Invoice", "SimpleInvoiceService", "invoices", "Invoices", "INV-2026-000042", False),
    Kind(
        "credit_notes",
        "CreditNote",
        "SimpleCreditNoteService",
        "credit-notes",
        "CreditNotes",
        "CN-2026-000007",
        True,
    ),
    Kind(
        "debit_notes",
        "DebitNote",
        "SimpleDebitNoteService",
        "debit-notes",
        "DebitNotes",
        "DN-2026-000003",
        True,
    ),
)


def file_name(kind: Kind) -> str:
    return f"invora/simple/{kind.segment}/v1/service.proto"


def render(kind: Kind, template: str | None = None) -> str:
    text = template if template is not None else TEMPLATE.read_text()
    lines = []
    for line in text.splitlines():
        if line.startswith("//@notes"):
            if not kind.correction:
                continue
            line = line[len("//@notes") :].removeprefix(" ")
        lines.append(line)
    return string.Template("\n".join(lines) + "\n").substitute(
        file=file_name(kind),
        package=f"invora.simple.{kind.segment}.v1",
        Doc=kind.doc,
        Service=kind.service,
        base=f"/api/v1/simple/{kind.path}",
        scope=f"Invora.Simple.{kind.scope_area}.v1",
        number_example=kind.number_example,
    )


def write_all(out: pathlib.Path) -> list[str]:
    names = []
    for kind in KINDS:
        target = out / file_name(kind)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(kind))
        names.append(file_name(kind))
    return names

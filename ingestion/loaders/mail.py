"""E-mail (.eml) with the standard library's `email` package: headers, then the body text.

The plain-text part is preferred; an HTML-only message is read through the HTML loader.
Attachments are named, not opened.
"""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

from ingestion.loaders.html import html_sections
from ingestion.loaders.registry import register
from ingestion.sections import LoadError, Section

HEADERS = ("Subject", "From", "To", "Cc", "Date")


@register(".eml")
def load_eml(path: Path) -> list[Section]:
    data = Path(path).read_bytes()
    if not data.strip():
        raise LoadError("empty file")
    try:
        message = email.message_from_bytes(data, policy=policy.default)
        head = [f"{name}: {message[name]}" for name in HEADERS if message[name]]
        subject = str(message["Subject"] or "").strip() or None
        body = message.get_body(preferencelist=("plain", "html"))
        sections: list[Section] = []
        if body is not None:
            content = body.get_content()
            if body.get_content_subtype() == "html":
                try:
                    sections = html_sections(content)
                except LoadError:
                    sections = []
            elif content.strip():
                sections = [Section(content.strip(), heading=subject)]
        attachments = [part.get_filename() for part in message.iter_attachments() if part.get_filename()]
    except (LookupError, ValueError, TypeError, AttributeError, KeyError) as exc:
        raise LoadError(f"malformed e-mail: {' '.join(str(exc).split()) or type(exc).__name__}") from exc
    if attachments:
        head.append("Attachments: " + ", ".join(attachments))
    if not sections and not head:
        raise LoadError("no headers or text in the message")
    if not sections and not any(h.startswith("Subject") for h in head):
        raise LoadError("no text in the message body")
    return [Section("\n".join(head), heading=subject)] + sections

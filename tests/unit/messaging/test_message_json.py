"""The send route answers with ``message_json(view)``; it must be byte for byte what ``MessageOut``
(the schema the OpenAPI document promises) serializes, for every field a message can carry."""

from __future__ import annotations

from datetime import UTC, datetime

from carerelay.messaging.api import message_json, message_out
from carerelay.messaging.schemas import MessageOut
from carerelay.messaging.service import AttachmentView, MessageView


def _view(**changes: object) -> MessageView:
    fields: dict[str, object] = dict(
        id=41, conversation_id=7, seq=3, sender_id=12, sender_name="Dr. Ana Lima", kind="text",
        text="K 6.8 critical — \"call me\" 🙏", priority="urgent", needs_ack=True, silent=False, patient_id=5,
        created_at=datetime(2026, 12, 2, 1, 2, 3, 456789, tzinfo=UTC), original_author_id=None,
        original_author_name=None, original_sent_at=None, forwarded_from_id=None,
        warnings_confirmed=["critical_result"], attachments=[])
    fields.update(changes)
    return MessageView(**fields)  # type: ignore[arg-type]


def test_a_plain_message_serializes_as_message_out() -> None:
    view = _view()
    assert message_json(view).decode() == message_out(view).model_dump_json()


def test_a_forwarded_message_with_attachments_serializes_as_message_out() -> None:
    view = _view(kind="forward", original_author_id=3, original_author_name="Carol Nurse",
                 original_sent_at=datetime(2026, 12, 1, 23, 59, 0, tzinfo=UTC), forwarded_from_id=40,
                 attachments=[AttachmentView(id=9, content_type="image/jpeg", size=123_456),
                              AttachmentView(id=10, content_type="audio/mp4", size=7)])
    assert message_json(view).decode() == message_out(view).model_dump_json()


def test_every_field_of_message_out_is_in_the_view() -> None:
    assert list(MessageOut.model_fields) == list(MessageView.__dataclass_fields__)

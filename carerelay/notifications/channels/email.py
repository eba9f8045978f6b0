"""E-mail over SMTP (optionally STARTTLS and a login), one message per delivery."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from carerelay.notifications.channels import ChannelError, Outgoing


class SmtpChannel:
    name = "email"

    def __init__(self, host: str, port: int, sender: str, *, starttls: bool = False, username: str | None = None,
                 password: str | None = None, timeout: float = 10.0) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.starttls, self.username, self.password, self.timeout = starttls, username, password, timeout

    def send(self, outgoing: Outgoing) -> str | None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = outgoing.address
        message["Subject"] = outgoing.subject
        message["Message-ID"] = f"<carerelay-{outgoing.delivery_id}@{self.sender.split('@')[-1]}>"
        message.set_content(outgoing.body)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                refused = smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise ChannelError(f"the mail server refused {outgoing.address}", retryable=False) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise ChannelError(f"mail server {self.host}:{self.port}: {exc}") from exc
        if refused:
            raise ChannelError(f"the mail server refused {', '.join(refused)}", retryable=False)
        return str(message["Message-ID"])
